"""The runtime imports, builds and localizes with torch impossible to import."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import sys, importlib.abc

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockTorch())
    import placekit as pk
    from placekit.tools.demo import write_dataset
    from placekit.ingest import read_locations_csv
    root = write_dataset(sys.argv[2], n_database=20, n_queries=4, n_foreign=1)
    b = pk.MapBuilder(pk.BuildOptions(model=sys.argv[1]))
    for name, loc in read_locations_csv(root / "database.csv").items():
        b.add(root / "database" / name, loc, name)
    b.build(root / "m.pkmap")
    with pk.Localizer.open(root / "m.pkmap") as loc:
        r = loc.localize(root / "queries" / "q0001.jpg")
    assert r.status in ("localized", "ambiguous", "unknown")
    assert "torch" not in sys.modules
    print("OK", r.status)
""")


def test_runtime_works_without_torch(tmp_path, tiny_model):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "sdk"))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_model), str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK")
