"""Trained GeM (``placekit-train gem``) against the off-the-shelf ImageNet GeM (fp32 and int8), through the runtime.

    python benchmarks/bench_trained_gem.py --out benchmarks/results/trained_gem.json

Every configuration runs ``placekit.tools.evaluation.evaluate`` (the code behind ``placekit eval``):
map built from the database images, PCA-whitened product-quantized index, one query at a time.
The peer "ImageNet GeM, 1280-D float, brute force" is scored on the same splits.

Held out of GeM training (the trained model never saw them):

* ``strecha-heldout``: Strecha entry-P10 and Herz-Jesus-P25, 1 km apart; map = even views,
  queries = odd; 5 m.
* ``kitti-seq1`` / ``kitti-seq2``: even frames map, odd frames query; 5 m.
* ``ie-tower-highrise``: IE Tower floors 17-23 only, split by clip as in the real-data suite.
* ``*-dusk``: the same four splits, every query seen at dusk through a dirty lens
  (``placekit_export.retrieval_eval.dusk_lens``, the degradation of ``bench_tracking.py``); maps
  built from the clean images.

Not held out (marked ``"held_out": false``): the full ``strecha`` and ``ie-tower`` sets of the
real-data suite, which contain fountain-P11 and the trained IE Tower floors.

Also per model: ``placekit demo`` (a rendered street; 20 held-out views and 8 views of another
street; 12 views of a third street given to the builder as negatives), the share of held-out
views localized and of foreign views answered ``unknown`` -- how well the calibrated decision
rejects places that are not in the map.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402
from real_data_suite import DATA, ie_tower, kitti, peer_rows, strecha  # noqa: E402

from placekit.tools.evaluation import evaluate, load_dataset  # noqa: E402

MODELS = (("ImageNet GeM fp32 (ONNX)", "gem-imagenet-fp32", "onnx"),
          ("ImageNet GeM int8 (ONNX)", "gem-imagenet-int8", "onnx"),
          ("ImageNet GeM int8 (LiteRT)", "gem-imagenet-int8.tflite", "litert"),
          ("trained GeM + Lw fp32 (ONNX)", "gem-fp32", "onnx"),
          ("trained GeM + Lw int8 (ONNX)", "gem-int8", "onnx"),
          ("trained GeM + Lw fp32 (LiteRT)", "gem-fp32.tflite", "litert"),
          ("trained GeM + Lw int8 (LiteRT)", "gem-int8.tflite", "litert"))
DATASETS = (("strecha-heldout", True, lambda r: strecha(r, ("entry-P10", "Herz-Jesus-P25"))),
            ("kitti-seq1", True, lambda r: kitti(r, "seq1")),
            ("kitti-seq2", True, lambda r: kitti(r, "seq2")),
            ("ie-tower-highrise", True, lambda r: ie_tower(r, floor_range="highrise")),
            ("strecha-heldout-dusk", True, lambda r: strecha(r, ("entry-P10", "Herz-Jesus-P25"), dusk=True)),
            ("kitti-seq1-dusk", True, lambda r: kitti(r, "seq1", dusk=True)),
            ("kitti-seq2-dusk", True, lambda r: kitti(r, "seq2", dusk=True)),
            ("ie-tower-highrise-dusk", True, lambda r: ie_tower(r, floor_range="highrise", dusk=True)),
            ("strecha", False, strecha),
            ("ie-tower", False, ie_tower))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", default=",".join(m[1] for m in MODELS), help="comma-separated subset of model names")
    args = p.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is not present")
        return
    import peers

    from placekit.errors import PlacekitError
    from placekit.inference.catalog import resolve_model

    wanted = set()
    for model in args.models.split(","):
        try:
            resolve_model(model)
            wanted.add(model)
        except PlacekitError:
            print(f"{model}: not shipped, skipped")
    float_gem = peers.FloatGem(args.threads)
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, held_out, layout in DATASETS:
            root = Path(tmp) / name
            threshold = layout(root)
            dataset = load_dataset(root)
            rows = []
            for label, model, backend in MODELS:
                if model not in wanted:
                    continue
                r = evaluate(dataset, model=model, threshold_m=threshold, threads=args.threads, backend=backend)
                rows.append({"method": label, "model": model, **{k: r[k] for k in (
                    "recall_at_1", "recall_at_5", "recall_at_10", "latency_ms_p50", "map_bytes_per_place")}})
            rows += peer_rows(dataset, threshold, [float_gem])
            tables[name] = {"held_out": held_out, "queries": len(dataset.queries), "database": len(dataset.database),
                            "rows": rows}
            for row in rows:
                print(f"{name:<18} {row['method']:<45} r@1 {row['recall_at_1']:.3f} r@5 {row['recall_at_5']:.3f}",
                      flush=True)
    from placekit.tools.demo import run_demo

    demo = {}
    for label, model, backend in MODELS:
        if model in wanted:
            with tempfile.TemporaryDirectory() as tmp:
                r = run_demo(tmp, model=model, threads=args.threads, quiet=True)
            demo[label] = {k: r[k] for k in ("localized_share", "median_error_m", "foreign_unknown_share")}
            print(f"demo {label:<45} {demo[label]}", flush=True)
    save(args.out, {"threads": args.threads, "datasets": tables, "demo": demo})


if __name__ == "__main__":
    main()
