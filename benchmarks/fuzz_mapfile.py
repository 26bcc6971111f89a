"""Fuzz the map reader: thousands of random mutations of a valid map; only MapFormatError may
escape ``PlaceMap.load`` + a search.

    python benchmarks/fuzz_mapfile.py --cases 5000 --out benchmarks/results/fuzz.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from fuzz_cases import run_cases  # noqa: E402
from provenance import save  # noqa: E402


OPENED = "opened, every member still matching its sha256 (e.g. bytes appended after the archive)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    source = ROOT / "tests" / "data" / "map_v1.pkmap"
    data = source.read_bytes()
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        outcomes, escaped = run_cases(data, args.cases, rng, tmp)
    if "opened" in outcomes:
        outcomes[OPENED] = outcomes.pop("opened")
    result = save(args.out, {"cases": args.cases, "seed": args.seed, "source": str(source.relative_to(ROOT)),
                             "outcomes": dict(outcomes), "escaped": escaped[:20], "seconds": time.perf_counter() - t})
    print(json.dumps(result, indent=1))
    sys.exit(1 if escaped else 0)


if __name__ == "__main__":
    main()
