"""The examples run on generated data."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_example(tmp_path, tiny_model):
    from placekit.tools.demo import write_dataset

    root = write_dataset(tmp_path / "street", n_database=20, n_queries=3, n_foreign=1)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "sdk"))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), str(root), str(tiny_model)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 4 and all(line.split()[1] in ("localized", "ambiguous", "unknown") for line in lines)


def _run(script, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "sdk"))
    return subprocess.run([sys.executable, str(ROOT / "examples" / script), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_app_embed_example(tmp_path, street_map, street, tiny_model):
    import shutil

    # the map names its model; put the model beside the map, where the Localizer looks for it
    shutil.copy(street_map, tmp_path / "site.pkmap")
    shutil.copy(tiny_model, tmp_path / tiny_model.name)
    proc = _run("app_embed.py", tmp_path / "site.pkmap", street / "queries" / "q0001.jpg")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(("at ", "ambiguous", "unknown"))


def test_robot_loop_example(tmp_path, street_map, tiny_model):
    import csv

    import cv2
    import numpy as np

    from placekit.tools.demo import render_view, render_world

    world, rng = render_world(3), np.random.default_rng(0)       # the street of the street_map fixture
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(12):
        cv2.imwrite(str(frames / f"f{i:03d}.jpg"), render_view(world, 0.2 + 0.01 * i, rng, 0.5))
    proc = _run("robot_loop.py", street_map, frames, "--out", tmp_path / "run", "--model", tiny_model)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(tmp_path / "run" / "trajectory.csv")))
    assert len(rows) == 12 and {r["status"] for r in rows} <= {"localized", "ambiguous", "unknown"}
    assert (tmp_path / "run" / "trajectory.png").stat().st_size > 1000
