"""Lay out ``shared/data`` as evaluation datasets; run ``placekit eval`` and the peers on each.

    python benchmarks/real_data_suite.py --out benchmarks/results/real_data.json \
        --plots benchmarks/results/plots

For every dataset, in one run: placekit's configurations through ``evaluate`` (the code behind
``placekit eval``: the shipped GeM through ONNX Runtime and through LiteRT), then the peers of
``peers.py`` (RootSIFT + VLAD, ORB bag of words, 1280-D float GeM, the Coral MobileNetV2), all
scored by ``placekit.tools.evaluation.recall_curve`` on the same splits. Latency is per query on this
machine (placekit: ``localize`` total; peers: describe + exhaustive search), one query at a time.

* strecha: entry-P10, fountain-P11, Herz-Jesus-P25 (P8 shows the same church as P25 in another
  frame, so it is left out), scenes 1 km apart; map = even views, queries = odd; 5 m threshold.
* kitti-seq1 / kitti-seq2: map = even frames, queries = odd frames (about 1.1 m apart); positions
  from poses.txt; 5 m threshold. (KITTI is evaluation-only: CC BY-NC-SA.)
* ie-tower: place-labelled indoor frames, split by clip (a clip is the file-name prefix before
  ``_frame_``; only some names carry a ``cNNN`` id): in each of the 9 areas with two or more
  clips, the frames of its last clip are queries; every other clip is in the map (every 3rd
  frame), single-clip areas included as distractors. Each area is a point 1 km from the others,
  so "correct within 25 m" means "same area". The clip is written as the ``group`` column, so
  map calibration judges frames only against other clips.

Exits with a message, not an error, when ``shared/data`` is absent.
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

from placekit.tools.evaluation import evaluate, load_dataset  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KEEP = ("recall_at_1", "recall_at_5", "recall_at_10", "median_position_error_m", "p90_position_error_m",
        "localized_precision", "status_shares", "latency_ms_p50", "latency_ms_p99", "map_bytes_per_place",
        "n_queries", "n_database", "threshold_m", "calibration")


def _write(root: Path, split: str, rows: list[tuple], dusk: bool = False) -> None:
    """rows: (source image, name, (x, y, z)[, group]). Images are linked, or with ``dusk`` written
    through ``placekit_export.retrieval_eval.dusk_lens`` (seeded by their order; JPEG quality 95
    or PNG, as the source)."""
    (root / split).mkdir(parents=True, exist_ok=True)
    grouped = any(len(r) > 3 for r in rows)
    lines = ["name,x,y,z" + (",group" if grouped else "")]
    if dusk:
        import cv2

        from placekit_export.retrieval_eval import DUSK_SEED, dusk_lens
        rng = np.random.default_rng(DUSK_SEED)
    for src, name, (x, y, z), *group in rows:
        if dusk:
            cv2.imwrite(str(root / split / name), dusk_lens(cv2.imread(str(src)), rng), [cv2.IMWRITE_JPEG_QUALITY, 95])
        else:
            (root / split / name).symlink_to(src.resolve())
        lines.append(f"{name},{x},{y},{z}" + (f",{group[0]}" if grouped else ""))
    (root / f"{split}.csv").write_text("\n".join(lines) + "\n")


def strecha(root: Path, scenes: tuple[str, ...] = ("entry-P10", "fountain-P11", "Herz-Jesus-P25"),
            dusk: bool = False) -> float:
    """Even views map, odd views query (``dusk``: queries through ``dusk_lens``); scenes 1 km apart."""
    parts = {"database": [], "queries": []}
    for k, scene in enumerate(scenes):
        for i, img in enumerate(sorted((DATA / "strecha" / scene / "images").glob("*.jpg"))):
            c = [float(v) for v in (DATA / "strecha" / scene / "cameras" / f"{img.name}.camera").read_text().split("\n")[7].split()]
            parts["database" if i % 2 == 0 else "queries"].append((img, f"{scene}_{img.name}", (c[0] + 1000 * k, c[1], c[2])))
    for split, rows in parts.items():
        _write(root, split, rows, dusk=dusk and split == "queries")
    return 5.0


def kitti(root: Path, seq: str, dusk: bool = False) -> float:
    """Even frames map, odd frames query (``dusk``: queries through ``dusk_lens``)."""
    poses = np.loadtxt(DATA / "kitti" / seq / "poses.txt").reshape(-1, 3, 4)
    images = sorted((DATA / "kitti" / seq / "image_l").glob("*.png"))
    parts = {"database": [], "queries": []}
    for i, (img, pose) in enumerate(zip(images, poses)):
        parts["database" if i % 2 == 0 else "queries"].append((img, img.name, tuple(pose[:, 3])))
    for split, rows in parts.items():
        _write(root, split, rows, dusk=dusk and split == "queries")
    return 5.0


def ie_tower(root: Path, stride: int = 3, floor_range: str | None = None, dusk: bool = False) -> float:
    """``floor_range``: keep only frames of that range (``highrise`` is held out of GeM training);
    ``dusk``: queries through ``dusk_lens``."""
    rows = [r for r in csv.DictReader(open(DATA / "ie_tower" / "dataset.csv"))
            if floor_range is None or r["floor_range"] == floor_range]
    by_area: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        clip = re.sub(r"_frame_\d+\.\w+$", "", Path(r["image_path"]).name)
        by_area[r["area"]][clip].append(DATA / "ie_tower" / r["image_path"])
    parts = {"database": [], "queries": []}
    for k, area in enumerate(sorted(by_area)):
        clips = sorted(by_area[area])
        for clip in clips:
            split = "queries" if len(clips) > 1 and clip == clips[-1] else "database"
            for img in sorted(by_area[area][clip])[::stride]:
                parts[split].append((img, f"{area}_{img.name}", (1000.0 * k, 0.0, 0.0), clip))
    for split, rows_ in parts.items():
        _write(root, split, rows_, dusk=dusk and split == "queries")
    return 25.0


def placekit_configs() -> tuple:
    """(label, model, backend): the default model on ONNX Runtime, its TFLite sibling on LiteRT."""
    from placekit.inference.catalog import DEFAULT_MODEL

    return ((f"placekit {DEFAULT_MODEL} (default), ONNX Runtime, PCA-whitened 256-D", DEFAULT_MODEL, "onnx"),
            (f"placekit {DEFAULT_MODEL}, LiteRT", f"{DEFAULT_MODEL}.tflite", "litert"))


def make_peers(threads: int) -> list:
    import peers
    out = [peers.RootSiftVlad(), peers.OrbBow(), peers.FloatGem(threads)]
    coral = DATA / "baselines" / "coral" / "mobilenet_v2_1.0_224_quant.tflite"
    if coral.is_file():
        out.append(peers.CoralMobileNet(coral, threads))
    from placekit.inference.imageio import read_image
    pool = [read_image(p) for p in sorted(DATA.glob("pool/*/*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    for peer in out:
        peer.fit(pool)
    return out


def peer_rows(dataset, threshold: float, peer_list: list) -> list[dict]:
    import peers
    from placekit.tools.evaluation import dataset_metric, recall_curve

    _, db_xyz, q_xyz = dataset_metric(dataset)
    rows = []
    for peer in peer_list:
        run = peers.run_peer(peer, [s.path for s in dataset.database], [s.path for s in dataset.queries])
        curve = recall_curve(run["ranked"], q_xyz, db_xyz, threshold, 10)
        rows.append({"method": peer.name, "peer": True, "recall_at_1": float(curve[0]), "recall_at_5": float(curve[4]),
                     "recall_at_10": float(curve[9]), "latency_ms_p50": run["latency_ms_p50"],
                     "latency_ms_p99": run["latency_ms_p99"], "bytes_per_place": run["bytes_per_place"]})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--plots", type=Path, default=None, help="write each dataset's plots into PLOTS/eval-NAME")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-peers", action="store_true")
    args = p.parse_args()
    if not DATA.is_dir():
        print(f"real-data suite skipped: {DATA} is not present")
        return
    peer_list = [] if args.no_peers else make_peers(args.threads)
    reports, tables = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, layout in (("strecha", strecha), ("kitti-seq1", lambda r: kitti(r, "seq1")),
                             ("kitti-seq2", lambda r: kitti(r, "seq2")), ("ie-tower", ie_tower)):
            root = Path(tmp) / name
            threshold = layout(root)
            dataset = load_dataset(root)
            table = []
            for i, (label, model, backend) in enumerate(placekit_configs()):
                plots = args.plots / f"eval-{name}" if (args.plots and i == 0) else None
                report = evaluate(dataset, model=model, threshold_m=threshold, threads=args.threads,
                                  backend=backend, plots_dir=plots)
                if i == 0:
                    reports[name] = {k: report[k] for k in KEEP}
                    if plots:
                        reports[name]["plots"] = [str(Path(f).relative_to(args.plots.parent)) for f in report["plots"]]
                table.append({"method": label, "peer": False, **{k: report[k] for k in (
                    "recall_at_1", "recall_at_5", "recall_at_10", "latency_ms_p50", "latency_ms_p99")},
                    "bytes_per_place": report["map_bytes_per_place"]})
            table += peer_rows(dataset, threshold, peer_list)
            tables[name] = table
            for row in table:
                print(f"{name:<11} {row['method'][:60]:<60} r@1 {row['recall_at_1']:.3f} r@5 {row['recall_at_5']:.3f} "
                      f"{row['latency_ms_p50']:.1f} ms {row['bytes_per_place']:.0f} B", flush=True)
    from placekit.inference.catalog import DEFAULT_MODEL

    save(args.out, {"model": DEFAULT_MODEL, "threads": args.threads, "datasets": reports, "peers": tables})


if __name__ == "__main__":
    main()
