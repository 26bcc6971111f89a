"""Soak: >= 100k ``localize`` calls from 2 threads on one Localizer, with live map updates.

    python benchmarks/soak.py --calls 100000 --out benchmarks/results/soak.json

Map: the demo street (60 places, shipped GeM). Frames: 16 rendered 320x240 views, cycled.
Two threads call ``localize`` (1 inference thread each); a third adds a place and removes
it again every 2 s (``add_place`` / ``remove_place`` / ``compact``). Every 5,000 calls the
process's resident memory (VmRSS, anonymous and file-backed), open file descriptors and the
window's latency percentiles are recorded. Growth is judged after a warm-up of 10% of calls.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

WINDOW = 5000


def rss() -> dict:
    out = {}
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "RssAnon", "RssFile")):
            out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=100000)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    import placekit as pk
    from placekit.ingest import read_locations_csv
    from placekit.tools.demo import render_view, render_world, write_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp) / "street", n_database=60, n_queries=2, n_foreign=0)
        builder = pk.MapBuilder(pk.BuildOptions())
        for name, loc in read_locations_csv(root / "database.csv").items():
            builder.add(root / "database" / name, loc, name)
        builder.build(Path(tmp) / "street.pkmap")
        world, rng = render_world(7), np.random.default_rng(1)
        frames = [cv2.resize(render_view(world, s, rng), (320, 240)) for s in np.linspace(0.05, 0.95, 16)]
        where = next(iter(read_locations_csv(root / "database.csv").values()))
        localizer = pk.Localizer.open(Path(tmp) / "street.pkmap", pk.LocalizerOptions(threads=1))
        counter = {"n": 0}
        lock = threading.Lock()
        windows, latencies, stop = [], [], threading.Event()
        fd_start = len(os.listdir("/proc/self/fd"))

        def worker(offset: int) -> None:
            i = offset
            while not stop.is_set():
                t = time.perf_counter()
                localizer.localize(frames[i % len(frames)])
                dt = time.perf_counter() - t
                i += 1
                with lock:
                    latencies.append(dt)
                    counter["n"] += 1
                    n = counter["n"]
                    if n % WINDOW == 0:
                        lat = np.array(latencies[-WINDOW:]) * 1000
                        windows.append({"calls": n, **rss(), "open_fds": len(os.listdir("/proc/self/fd")),
                                        "p50_ms": float(np.median(lat)), "p99_ms": float(np.percentile(lat, 99)),
                                        "places": len(localizer.map.places)})
                        del latencies[:-WINDOW]
                        print(windows[-1], flush=True)
                    if n >= args.calls:
                        stop.set()

        def updater() -> None:
            k = 0
            while not stop.wait(2.0):
                pid = localizer.add_place(frames[k % len(frames)], where, f"soak_{k}")
                localizer.remove_place(pid)
                localizer.compact()
                k += 1

        threads = [threading.Thread(target=worker, args=(j * 8,)) for j in range(2)] + [threading.Thread(target=updater)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        localizer.close()
        fd_end = len(os.listdir("/proc/self/fd"))
    warm = [w for w in windows if w["calls"] > args.calls // 10]
    base = warm[0]["VmRSS"]
    result = {"calls": counter["n"], "seconds": elapsed, "windows": windows,
              "rss_growth_after_warmup_pct": 100.0 * (max(w["VmRSS"] for w in warm) - base) / base,
              "anon_growth_after_warmup_bytes": max(w["RssAnon"] for w in warm) - warm[0]["RssAnon"],
              "p99_ms_first_last": [warm[0]["p99_ms"], warm[-1]["p99_ms"]],
              "open_fds_start_end": [fd_start, fd_end]}
    print(save(args.out, result))


if __name__ == "__main__":
    main()
