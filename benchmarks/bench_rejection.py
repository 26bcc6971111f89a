"""Out-of-map rejection per global model, on data no shipped model was trained on.

    python benchmarks/bench_rejection.py --out benchmarks/results/rejection.json

Maps (one per scene / drive, global descriptor only, built by ``MapBuilder`` with its own
calibration): Strecha entry-P10 and Herz-Jesus-P25 (held out of GeM training), KITTI seq1 and
seq2 (never trained on); map = even images with their camera centres, in-map queries = odd
images (correct when the answer is within 5 m). Out-of-map queries for each map: the photos of
the other three maps' scenes (so a street map must reject another street, a facade map another
facade) plus every 10th frame of IE Tower's highrise floors (held out; indoor).

Each model is run twice: calibrated on the map's own images (the default), and with
``MapBuilder.add_negative`` photos of other places: the landmark pool (every 2nd photo) and
every 20th IE Tower frame of the other floor ranges, none of which is an out-of-map query.

Reported per model and map: share of in-map queries localized and correct, share of
out-of-map queries answered ``localized`` (should be 0), and the precision of ``localized``
over both. (The trained GeM was trained on the pool; the pool serves only as negatives.)
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_pose import DATA, kitti, strecha  # noqa: E402
from provenance import save  # noqa: E402

THRESHOLD_M = 5.0
MODELS = ("gem-imagenet-fp32", "gem-imagenet-int8", "gem-imagenet-int8.tflite", "gem-fp32", "gem-int8.tflite")


def maps() -> dict[str, list]:
    return {"strecha entry-P10": strecha("entry-P10"), "strecha Herz-Jesus-P25": strecha("Herz-Jesus-P25"),
            "kitti seq1": kitti("seq1"), "kitti seq2": kitti("seq2")}


def indoor_frames() -> list[Path]:
    with open(DATA / "ie_tower" / "dataset.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["floor_range"] == "highrise"]
    return [DATA / "ie_tower" / r["image_path"] for r in sorted(rows, key=lambda r: r["image_path"])[::10]]


def negative_photos() -> list[Path]:
    pool = sorted(p for p in (DATA / "pool").glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[::2]
    with open(DATA / "ie_tower" / "dataset.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["floor_range"] != "highrise"]
    return pool + [DATA / "ie_tower" / r["image_path"] for r in sorted(rows, key=lambda r: r["image_path"])[::20]]


def run_map(model: str, samples: list, foreign: list[Path], tmp: Path, threads: int,
            negatives: list[Path] = ()) -> dict:
    import placekit as pk

    db, queries = samples[0::2], samples[1::2]
    builder = pk.MapBuilder(pk.BuildOptions(model=model, match_radius_m=THRESHOLD_M, local_features="none",
                                            threads=threads))
    for img, c, _, _ in db:
        builder.add(img, pk.Location(x=c[0], y=c[1], z=c[2]), img.name)
    for img in negatives:
        builder.add_negative(img)
    path = tmp / "rejection.pkmap"
    info = builder.build(path)
    xyz = np.array([c for _, c, _, _ in db])
    in_map, out_of_map = [], []
    with pk.Localizer.open(path, pk.LocalizerOptions(threads=threads)) as loc:
        for img, c, _, _ in queries:
            r = loc.localize(img)
            correct = bool(r.matches) and float(np.linalg.norm(xyz[r.matches[0].place_id] - c)) <= THRESHOLD_M
            in_map.append((r.status, correct))
        out_of_map = [loc.localize(img).status for img in foreign]
    good = sum(s == "localized" and ok for s, ok in in_map)
    bad = sum(s == "localized" and not ok for s, ok in in_map) + sum(s == "localized" for s in out_of_map)
    return {"in_map_queries": len(in_map), "in_map_localized_correct": good / len(in_map),
            "in_map_localized_wrong": sum(s == "localized" and not ok for s, ok in in_map) / len(in_map),
            "out_of_map_queries": len(out_of_map),
            "out_of_map_localized": sum(s == "localized" for s in out_of_map) / len(out_of_map),
            "out_of_map_unknown": sum(s == "unknown" for s in out_of_map) / len(out_of_map),
            "precision_of_localized": good / (good + bad) if good + bad else None,
            "unknown_threshold": info.calibration["unknown_threshold"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    args = p.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is not present")
        return
    scenes = maps()
    indoor = indoor_frames()
    negatives = negative_photos()
    assert not set(negatives) & set(indoor)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for label, negs in ((model, []), (f"{model} + {len(negatives)} negatives", negatives)):
                results[label] = {}
                for name, samples in scenes.items():
                    foreign = [s[0] for other, ss in scenes.items() if other != name for s in ss] + indoor
                    results[label][name] = r = run_map(model, samples, foreign, Path(tmp), args.threads, negs)
                    print(label, name, {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()},
                          flush=True)
    save(args.out, {"threshold_m": THRESHOLD_M, "indoor_foreign_frames": len(indoor), "negatives": len(negatives),
                    "results": results})


if __name__ == "__main__":
    main()
