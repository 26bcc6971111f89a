"""Runtime-only install: ``pip install placekit`` (no extras) into a fresh venv; record what it
pulls in, its size on disk, that torch is absent, and the time to import placekit.

    python benchmarks/install_size.py --out benchmarks/results/install.json

Needs network access to the package index (or a local mirror pip is configured for).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMPORT_TIME = "import time; t = time.perf_counter(); import placekit; print((time.perf_counter() - t) * 1000)"


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        py = venv / "bin" / "python"
        site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
        empty = tree_bytes(site)
        subprocess.run([str(py), "-m", "pip", "install", "-q", str(ROOT)], check=True)
        frozen = subprocess.run([str(py), "-m", "pip", "list", "--format=json"], capture_output=True, text=True,
                                check=True).stdout
        packages = {d["name"].lower(): d["version"] for d in json.loads(frozen)}
        sizes = {}
        for d in sorted(site.iterdir()):
            if d.is_dir() and not d.name.endswith((".dist-info", "__pycache__")):
                sizes[d.name] = tree_bytes(d)
        import_ms = [float(subprocess.run([str(py), "-c", IMPORT_TIME], capture_output=True, text=True,
                                          check=True, cwd=tmp).stdout) for _ in range(5)]
        total = tree_bytes(site) - empty
    result = {"packages": packages, "torch_installed": "torch" in packages, "installed_bytes": total,
              "largest": dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:8]),
              "import_ms_median": sorted(import_ms)[2]}
    print(json.dumps(save(args.out, result), indent=1))


if __name__ == "__main__":
    main()
