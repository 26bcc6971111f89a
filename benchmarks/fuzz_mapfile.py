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
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

import placekit as pk  # noqa: E402
from fuzz_cases import mutate, open_and_search  # noqa: E402
from provenance import save  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    source = ROOT / "tests" / "data" / "map_v1.pkmap"
    data = source.read_bytes()
    rng = np.random.default_rng(args.seed)
    outcomes: Counter = Counter()
    escaped = []
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.pkmap"
        for i in range(args.cases):
            path.write_bytes(mutate(data, rng))
            try:
                open_and_search(path)
                outcomes["opened, every member still matching its sha256 (e.g. bytes appended after the archive)"] += 1
            except pk.MapFormatError:
                outcomes["MapFormatError"] += 1
            except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
                outcomes[type(exc).__name__] += 1
                escaped.append(f"case {i}: {type(exc).__name__}: {exc}")
    result = save(args.out, {"cases": args.cases, "seed": args.seed, "source": str(source.relative_to(ROOT)),
                             "outcomes": dict(outcomes), "escaped": escaped[:20], "seconds": time.perf_counter() - t})
    print(json.dumps(result, indent=1))
    sys.exit(1 if escaped else 0)


if __name__ == "__main__":
    main()
