"""Map benchmark: open time and resident memory of a 100k-place map.

    python benchmarks/bench_map.py --places 100000 --out benchmarks/results/map.json

Builds a map of synthetic 1280-D descriptors (``synthetic.py``; the shape of the shipped GeM's
output) with the recipe ``auto`` picks at this size, then in fresh processes measures: the
time of ``PlaceMap.load`` (page cache warm; with and without sha256 verification), and the
process's resident memory (anonymous and file-backed, from /proc/self/status) after opening
and after 1,000 searches.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

PROBE = r"""
import json, sys, time
import numpy as np
def rss():
    f = {l.split(':')[0]: int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith(('VmRSS', 'RssAnon', 'RssFile'))}
    return f
from placekit.mapfile.placemap import PlaceMap
from placekit.index.ivf import PlaceIndex
path, verify, queries = sys.argv[1], sys.argv[2] == '1', np.load(sys.argv[3])
before = rss()
t = time.perf_counter(); m = PlaceMap.load(path, verify=verify); open_s = time.perf_counter() - t
after_open = rss()
times = []
for q in queries:
    t = time.perf_counter(); m.index.search(q, k=5); times.append(time.perf_counter() - t)
after_q = rss()
print(json.dumps({"open_ms": open_s * 1000, "before": before, "after_open": after_open, "after_queries": after_q,
                  "search_p50_ms": float(np.median(times) * 1000)}))
"""


def build_map(path: Path, n: int) -> dict:
    from synthetic import clustered

    from placekit.decision.calibration import Calibration
    from placekit.index.ivf import PlaceIndex, auto_recipe
    from placekit.mapfile.placemap import PlaceMap
    from placekit.mapfile.places import PlaceTable

    x = clustered(n, 1280, seed=1)
    recipe = auto_recipe(n, 1280)
    t = time.perf_counter()
    index = PlaceIndex(recipe, 1280)
    index.train(x)
    index.add(x, np.arange(n))
    build_s = time.perf_counter() - t
    xyz = np.zeros((n, 3))
    xyz[:, 0] = np.arange(n) * 2.0
    places = PlaceTable.create(np.arange(n), xyz, [f"img_{i:07d}.jpg" for i in range(n)])
    pm = PlaceMap(model={"name": "synthetic", "sha256": "0" * 64, "info": {}}, descriptor={"kind": "gem", "dim": 1280},
                  index=index, places=places, frame=None, calibration=Calibration())
    pm.save(path)
    codes = index.lists.codes.nbytes if index.lists.codes is not None else 0
    return {"recipe": recipe, "build_s": build_s, "code_bytes": codes, "file_bytes": path.stat().st_size}


def probe(path: Path, verify: bool, queries: Path) -> dict:
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", PROBE, str(path), "1" if verify else "0", str(queries)],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--places", type=int, default=100000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    from synthetic import clustered

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.pkmap"
        info = build_map(path, args.places)
        qpath = Path(tmp) / "q.npy"
        np.save(qpath, clustered(1000, 1280, seed=2))
        runs = {v: [probe(path, v, qpath) for _ in range(args.repeats)] for v in (False, True)}
    result = {"places": args.places, **info}
    for verify, rs in runs.items():
        key = "verified" if verify else "unverified"
        delta = lambda a, b, f: (rs[0][b][f] - rs[0][a][f])  # noqa: E731
        result[key] = {
            "open_ms_median": float(np.median([r["open_ms"] for r in rs])),
            "rss_growth_after_open_bytes": delta("before", "after_open", "VmRSS"),
            "anon_growth_after_open_bytes": delta("before", "after_open", "RssAnon"),
            "rss_growth_after_1000_queries_bytes": delta("before", "after_queries", "VmRSS"),
            "anon_growth_after_1000_queries_bytes": delta("before", "after_queries", "RssAnon"),
            "file_backed_growth_after_1000_queries_bytes": delta("before", "after_queries", "RssFile"),
            "search_p50_ms": float(np.median([r["search_p50_ms"] for r in rs])),
        }
    print(json.dumps(save(args.out, result), indent=1))


if __name__ == "__main__":
    main()
