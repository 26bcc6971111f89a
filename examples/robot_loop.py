"""A robot's localization loop: replay a folder of frames as a camera stream, track over time,
write the trajectory (CSV) and a plot of it.

    python examples/robot_loop.py SITE.pkmap FRAMES_DIR --hz 10 --out run/ [--model PATH]

Frames are read in file-name order and timestamped at ``--hz``; each goes through
``Tracker.track`` (the filtered answer) and, for comparison, the same frame's single-shot answer
is kept. ``run/trajectory.csv`` has one row per frame (status, x/y or lat/lon, uncertainty,
confidence, latency); ``run/trajectory.png`` plots the map places and both answers (needs
matplotlib; skipped with a note otherwise).
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

import placekit as pk
from placekit.inference.imageio import list_images, read_image


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("map")
    p.add_argument("frames")
    p.add_argument("--hz", type=float, default=10.0, help="camera rate used for the timestamps")
    p.add_argument("--out", type=Path, default=Path("run"))
    p.add_argument("--model", default=None, help="model path, when the map's model is not installed")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    frames = list_images(args.frames)
    rows = []
    with pk.Localizer.open(args.map, pk.LocalizerOptions(model=args.model, threads=args.threads)) as localizer:
        tracker = pk.Tracker(localizer)
        start = time.perf_counter()
        for i, path in enumerate(frames):
            image = read_image(path)                      # the camera hands over a BGR array
            tracked = tracker.track(image, timestamp=i / args.hz)
            single = tracked.matches[0] if tracked.matches else None
            rows.append(_row(localizer, path.name, i / args.hz, tracked, single))
        elapsed = time.perf_counter() - start
    with open(args.out / "trajectory.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    localized = sum(r["status"] == "localized" for r in rows)
    print(f"{len(rows)} frames in {elapsed:.1f} s ({1000 * elapsed / len(rows):.1f} ms per frame); "
          f"{localized} localized; trajectory in {args.out / 'trajectory.csv'}")
    _plot(args.map, rows, args.out / "trajectory.png")


def _row(localizer: pk.Localizer, name: str, t: float, tracked: pk.Localization, best) -> dict:
    xy = localizer.to_metric(tracked.location)[:2] if tracked.location else (np.nan, np.nan)
    single_xy = localizer.to_metric(best.location)[:2] if best else (np.nan, np.nan)
    return {"frame": name, "t_s": round(t, 3), "status": tracked.status,
            "x_m": round(float(xy[0]), 2), "y_m": round(float(xy[1]), 2),
            "single_x_m": round(float(single_xy[0]), 2), "single_y_m": round(float(single_xy[1]), 2),
            "uncertainty_m": None if tracked.uncertainty_m is None else round(tracked.uncertainty_m, 2),
            "confidence": round(tracked.confidence, 3), "latency_ms": round(tracked.timings_ms["total"], 1)}


def _plot(map_path: str, rows: list[dict], out: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install 'placekit[plots]')")
        return
    from placekit.mapfile.placemap import PlaceMap

    placemap = PlaceMap.load(map_path)
    xyz = np.asarray(placemap.places.xyz)
    placemap.close()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(xyz[:, 0], xyz[:, 1], s=8, c="lightgrey", label="map places")
    ax.plot([r["single_x_m"] for r in rows], [r["single_y_m"] for r in rows], "x", ms=4, c="tab:orange",
            label="single frame (best match)")
    ax.plot([r["x_m"] for r in rows], [r["y_m"] for r in rows], "-o", ms=3, c="tab:blue", label="tracked")
    ax.set(xlabel="x (m)", ylabel="y (m)", title="robot_loop trajectory")
    ax.axis("equal")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"plot in {out}")


if __name__ == "__main__":
    main()
