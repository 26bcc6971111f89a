"""Lay out ``shared/data`` as evaluation datasets and run ``placekit eval`` on each.

    python benchmarks/real_data_suite.py --out benchmarks/results/real_data.json

* strecha: entry-P10, fountain-P11, Herz-Jesus-P25 (P8 shows the same church as P25 in another
  frame, so it is left out), scenes 1 km apart; map = even views, queries = odd; 5 m threshold.
* kitti-seq1 / kitti-seq2: map = even frames, queries = odd frames (about 1.1 m apart); positions
  from poses.txt; 5 m threshold. (KITTI is evaluation-only: CC BY-NC-SA.)
* ie-tower: place-labelled indoor frames, split by clip (a clip is the file-name prefix before
  ``_frame_``; only some names carry a ``cNNN`` id): in each of the 9 areas with two or more
  clips, the frames of its last clip are queries; every other clip is in the map (every 3rd
  frame), single-clip areas included as distractors. Each area is a point 1 km from the others,
  so "correct within 25 m" means "same area".

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

from placekit.evaluation import evaluate, load_dataset  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KEEP = ("recall_at_1", "recall_at_5", "recall_at_10", "median_position_error_m", "p90_position_error_m",
        "localized_precision", "status_shares", "latency_ms_p50", "latency_ms_p99", "map_bytes_per_place",
        "n_queries", "n_database", "threshold_m")


def _write(root: Path, split: str, rows: list[tuple[Path, str, tuple[float, float, float]]]) -> None:
    (root / split).mkdir(parents=True, exist_ok=True)
    lines = ["name,x,y,z"]
    for src, name, (x, y, z) in rows:
        (root / split / name).symlink_to(src.resolve())
        lines.append(f"{name},{x},{y},{z}")
    (root / f"{split}.csv").write_text("\n".join(lines) + "\n")


def strecha(root: Path) -> float:
    parts = {"database": [], "queries": []}
    for k, scene in enumerate(("entry-P10", "fountain-P11", "Herz-Jesus-P25")):
        for i, img in enumerate(sorted((DATA / "strecha" / scene / "images").glob("*.jpg"))):
            c = [float(v) for v in (DATA / "strecha" / scene / "cameras" / f"{img.name}.camera").read_text().split("\n")[7].split()]
            parts["database" if i % 2 == 0 else "queries"].append((img, f"{scene}_{img.name}", (c[0] + 1000 * k, c[1], c[2])))
    for split, rows in parts.items():
        _write(root, split, rows)
    return 5.0


def kitti(root: Path, seq: str) -> float:
    poses = np.loadtxt(DATA / "kitti" / seq / "poses.txt").reshape(-1, 3, 4)
    images = sorted((DATA / "kitti" / seq / "image_l").glob("*.png"))
    parts = {"database": [], "queries": []}
    for i, (img, pose) in enumerate(zip(images, poses)):
        parts["database" if i % 2 == 0 else "queries"].append((img, img.name, tuple(pose[:, 3])))
    for split, rows in parts.items():
        _write(root, split, rows)
    return 5.0


def ie_tower(root: Path, stride: int = 3) -> float:
    rows = list(csv.DictReader(open(DATA / "ie_tower" / "dataset.csv")))
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
                parts[split].append((img, f"{area}_{img.name}", (1000.0 * k, 0.0, 0.0)))
    for split, rows_ in parts.items():
        _write(root, split, rows_)
    return 25.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if not DATA.is_dir():
        print(f"real-data suite skipped: {DATA} is not present")
        return
    reports = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, layout in (("strecha", strecha), ("kitti-seq1", lambda r: kitti(r, "seq1")),
                             ("kitti-seq2", lambda r: kitti(r, "seq2")), ("ie-tower", ie_tower)):
            root = Path(tmp) / name
            threshold = layout(root)
            report = evaluate(load_dataset(root), model=args.model, threshold_m=threshold)
            reports[name] = {k: report[k] for k in KEEP}
            print(name, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in reports[name].items()
                         if k in ("recall_at_1", "recall_at_5", "median_position_error_m", "n_queries")}, flush=True)
    save(args.out, {"model": args.model, "datasets": reports})


if __name__ == "__main__":
    main()
