"""Images for parity checks and int8 calibration: real photos from ``../shared/data`` when
present, else generated ones (the model card records which).

Parity sources (every source gets an equal share of ``n``; a source with fewer images passes
the rest on):

* ``strecha``: the photos of every Strecha scene (outdoor facades, 54 in all);
* ``ie_tower``: IE Tower frames of the highrise floors (indoor), the floor range that neither
  training nor ``calibration_set`` uses.

``calibration_set`` writes the calibration folder the shipped int8 models were made with:
outdoor ``pool`` photos and IE Tower frames of the other floor ranges, so that both deployment
domains (outdoor streets, indoor buildings) set the activation ranges.
"""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np

from placekit.imageio import list_images, read_image

HELD_OUT_FLOOR_RANGE = "highrise"


def shared_data_dir() -> Path | None:
    env = os.environ.get("PLACEKIT_SHARED_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "data" for p in here.parents[:4]]
    for c in candidates:
        if (c / "README.md").is_file():
            return c
    return None


def ie_tower_frames(data: Path, held_out: bool) -> list[Path]:
    """IE Tower frames of the held-out floor range (``held_out``) or of the others, sorted."""
    table = data / "ie_tower" / "dataset.csv"
    if not table.is_file():
        return []
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    return sorted(data / "ie_tower" / r["image_path"] for r in rows
                  if (r["floor_range"] == HELD_OUT_FLOOR_RANGE) == held_out)


def _source_paths(data: Path, source: str) -> list[Path]:
    if source == "ie_tower":
        return ie_tower_frames(data, held_out=True)
    paths = []
    for folder in sorted((data / source).glob("*")):
        target = folder / "images" if (folder / "images").is_dir() else folder
        if target.is_dir():
            paths += list_images(target)
    return paths


def parity_images(n: int = 24, seed: int = 0, exclude: set[str] = frozenset(),
                  sources: tuple[str, ...] = ("strecha",)) -> tuple[list[np.ndarray], str]:
    """Up to ``n`` BGR images and a description of where they came from. ``exclude``: sha256
    of image files that must not be used (the calibration set)."""
    from placekit.engine import sha256_file

    data = shared_data_dir()
    if data is not None:
        rng = np.random.default_rng(seed)
        pools = [[p for p in _source_paths(data, s) if sha256_file(p) not in exclude] for s in sources]
        chosen, parts, left = [], [], n
        for i, (source, pool) in enumerate(sorted(zip(sources, pools), key=lambda sp: len(sp[1]))):
            share = min(len(pool), left // (len(sources) - i))
            chosen += [pool[j] for j in sorted(rng.choice(len(pool), share, replace=False))]
            parts.append(f"{share} {source}")
            left -= share
        return [read_image(p) for p in chosen], (f"{len(chosen)} real photos from shared/data "
                                                 f"({', '.join(parts)}), none of them in the calibration set")
    from placekit.demo import render_view, render_world

    world = render_world(seed)
    imgs = [render_view(world, 0.1 + 0.8 * i / n, np.random.default_rng(i)) for i in range(n)]
    return imgs, f"{n} generated street views (shared/data absent)"


def calibration_set(out: Path, n_outdoor: int = 32, n_indoor: int = 32) -> list[Path]:
    """Copy a calibration folder: ``n_outdoor`` photos of ``pool`` and ``n_indoor`` IE Tower
    frames of the non-held-out floors, both spread evenly over their sorted lists."""
    data = shared_data_dir()
    if data is None:
        raise FileNotFoundError("shared/data not found (set PLACEKIT_SHARED_DATA)")
    outdoor = sorted(p for d in sorted((data / "pool").glob("*")) if d.is_dir() for p in list_images(d))
    indoor = ie_tower_frames(data, held_out=False)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for prefix, paths, k in (("outdoor", outdoor, n_outdoor), ("indoor", indoor, n_indoor)):
        for p in [paths[int(i)] for i in np.linspace(0, len(paths) - 1, min(k, len(paths)))]:
            target = out / f"{prefix}_{p.parent.name}_{p.name}"
            shutil.copyfile(p, target)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m placekit_export.parity_images",
                                description="Write the int8 calibration folder used for the shipped models.")
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    print(f"wrote {len(calibration_set(args.out))} images to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
