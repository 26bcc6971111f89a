"""The examples run on generated data."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_example(tmp_path, tiny_model):
    from placekit.demo import write_dataset

    root = write_dataset(tmp_path / "street", n_database=20, n_queries=3, n_foreign=1)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "sdk"))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), str(root), str(tiny_model)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 4 and all(line.split()[1] in ("localized", "ambiguous", "unknown") for line in lines)
