"""Images for parity checks: real photos from ``../shared/data`` when present, else generated
ones (the model card records which).

Parity sources (every source gets an equal share of ``n``; a source with fewer images passes
the rest on):

* ``strecha``: the photos of every Strecha scene (outdoor facades, 54 in all);
* ``ie_tower``: IE Tower frames of the highrise floors (indoor), the floor range that neither
  training nor the int8 calibration folder uses.

The int8 calibration folder (``calibration_images``) is drawn from the other IE Tower floors,
so the two sets never share an image.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from placekit.inference.imageio import list_images, read_image

HELD_OUT_FLOOR_RANGE = "highrise"


def shared_data_or_skip() -> Path | None:
    """``shared_data_dir()``, or None after saying so (for scripts that need the real data)."""
    data = shared_data_dir()
    if data is None:
        print("skipped: shared/data is not present")
    return data


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
    return sorted(
        data / "ie_tower" / r["image_path"] for r in rows if (r["floor_range"] == HELD_OUT_FLOOR_RANGE) == held_out
    )


def _source_paths(data: Path, source: str) -> list[Path]:
    if source == "ie_tower":
        return ie_tower_frames(data, held_out=True)
    paths = []
    for folder in sorted((data / source).glob("*")):
        target = folder / "images" if (folder / "images").is_dir() else folder
        if target.is_dir():
            paths += list_images(target)
    return paths


def parity_images(
    n: int = 24, seed: int = 0, exclude: set[str] = frozenset(), sources: tuple[str, ...] = ("strecha",)
) -> tuple[list[np.ndarray], str]:
    """Up to ``n`` BGR images and a description of where they came from. ``exclude``: sha256
    of image files that must not be used (the calibration set)."""
    from placekit.inference.engine import sha256_file

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
        return [read_image(p) for p in chosen], (
            f"{len(chosen)} real photos from shared/data ({', '.join(parts)}), none of them in the calibration set"
        )
    from placekit.tools.demo import render_view, render_world

    world = render_world(seed)
    imgs = [render_view(world, 0.1 + 0.8 * i / n, np.random.default_rng(i)) for i in range(n)]
    return imgs, f"{n} generated street views (shared/data absent)"
