"""The int8 calibration folder the shipped models were made with.

    python -m placekit_export.calibration_images CALIB_DIR

Outdoor ``pool`` photos and IE Tower frames of the floor ranges the parity check does not use
(``parity_images.HELD_OUT_FLOOR_RANGE`` is left out), so that both deployment domains (outdoor
streets, indoor buildings) set the activation ranges and no calibration image is a parity image.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from placekit.inference.imageio import list_images

from .parity_images import ie_tower_frames, shared_data_dir


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

    p = argparse.ArgumentParser(
        prog="python -m placekit_export.calibration_images",
        description="Write the int8 calibration folder used for the shipped models.",
    )
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    print(f"wrote {len(calibration_set(args.out))} images to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
