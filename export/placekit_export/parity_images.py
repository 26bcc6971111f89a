"""Images for parity checks: real photos from ``../shared/data`` when present, else generated
ones (the model card records which)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from placekit.imageio import list_images, read_image


def shared_data_dir() -> Path | None:
    env = os.environ.get("PLACEKIT_SHARED_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "data" for p in here.parents[:4]]
    for c in candidates:
        if (c / "README.md").is_file():
            return c
    return None


def parity_images(n: int = 24, seed: int = 0, exclude: set[str] = frozenset(),
                  sources: tuple[str, ...] = ("pool", "strecha")) -> tuple[list[np.ndarray], str]:
    """Up to ``n`` BGR images and a description of where they came from. ``exclude``: sha256
    of image files that must not be used (the calibration set)."""
    from placekit.engine import sha256_file

    data = shared_data_dir()
    if data is not None:
        paths = []
        for sub in sources:
            for folder in sorted((data / sub).glob("*")):
                target = folder / "images" if (folder / "images").is_dir() else folder
                if target.is_dir():
                    paths += [p for p in list_images(target) if sha256_file(p) not in exclude]
        rng = np.random.default_rng(seed)
        pick = sorted(rng.choice(len(paths), min(n, len(paths)), replace=False))
        chosen = [paths[i] for i in pick]
        return [read_image(p) for p in chosen], (f"{len(chosen)} real photos from shared/data "
                                                 f"({', '.join(sources)}), none of them in the calibration set")
    from placekit.demo import render_world, render_view

    world = render_world(seed)
    imgs = [render_view(world, 0.1 + 0.8 * i / n, np.random.default_rng(i)) for i in range(n)]
    return imgs, f"{n} generated street views (shared/data absent)"
