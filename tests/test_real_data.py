"""Real photos (Strecha scenes from ../shared/data) through the CLI with the shipped model.
Skips when the data or the shipped model is absent."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA
from placekit.inference.catalog import DEFAULT_MODEL, list_models

STRECHA = SHARED_DATA / "strecha"
SCENE_SPACING_M = 1000.0  # scenes are placed this far apart in one local frame
# Herz-Jesus-P8 and Herz-Jesus-P25 photograph the same church in two coordinate frames: a match
# between them is visually right but cannot be scored, so only P25 is used.
SCENES = ("entry-P10", "fountain-P11", "Herz-Jesus-P25")

pytestmark = [
    pytest.mark.skipif(not STRECHA.is_dir(), reason=f"Strecha scenes not present at {STRECHA}"),
    pytest.mark.skipif(DEFAULT_MODEL + ".onnx" not in {e.name for e in list_models()}, reason="shipped model not installed"),
]


def camera_centre(path: Path) -> np.ndarray:
    """Line 8 of a Strecha .camera file: the camera centre in metres."""
    return np.array([float(v) for v in path.read_text().split("\n")[7].split()])


def layout(tmp: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Even images -> map folder + CSV; odd images -> queries with their true positions."""
    db = tmp / "database"
    db.mkdir()
    rows, truth = ["name,x,y,z"], {}
    for k, scene in enumerate(STRECHA / name for name in SCENES):
        for i, img in enumerate(sorted((scene / "images").glob("*.jpg"))):
            c = camera_centre(scene / "cameras" / f"{img.name}.camera") + [k * SCENE_SPACING_M, 0, 0]
            name = f"{scene.name}_{img.name}"
            if i % 2 == 0:
                shutil.copy(img, db / name)
                rows.append(f"{name},{c[0]},{c[1]},{c[2]}")
            else:
                truth[str(img)] = c
    (tmp / "database.csv").write_text("\n".join(rows) + "\n")
    return db, truth


def test_map_build_and_localize_real_photos(tmp_path):
    db, truth = layout(tmp_path)
    env = dict(os.environ)
    cli = [sys.executable, "-m", "placekit.tools.cli"]
    out = tmp_path / "strecha.pkmap"
    subprocess.run([*cli, "map", "build", str(db), "--locations", str(tmp_path / "database.csv"), "-o", str(out),
                    "--radius", "5", "-q"], check=True, env=env, capture_output=True, timeout=600)
    proc = subprocess.run([*cli, "localize", str(out), *truth, "--json"], check=True, env=env,
                          capture_output=True, text=True, timeout=600)
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(truth)
    errors = []
    for r in results:
        best = r["matches"][0]["location"]
        errors.append(np.linalg.norm(np.array([best["x"], best["y"], best["z"]]) - truth[r["image"]]))
    errors = np.array(errors)
    assert (errors < 100).mean() >= 0.9  # right scene
    assert np.median(errors) < 5.0       # and a nearby view
