"""Soak with faults: readers localize while a writer process edits and saves the map and is
killed (SIGKILL) at random moments, mid-save included.

    python benchmarks/soak_faults.py --seconds 1800 --out benchmarks/results/soak_faults.json

Map: the demo street (60 places, shipped default GeM). In this process, 2 threads call
``localize`` on rendered views; every 200 calls a thread reopens the map file (deployments pick up
a new map by reopening it). A writer subprocess loops: open the map, add a place, remove an
earlier added one, log the ids it is about to save, ``save()`` (atomic: write beside, rename),
log "saved". Every 0.5-3 s the writer is killed with SIGKILL and restarted. After every kill
the file must open with every member's sha256 verified and hold exactly the ids of the last
completed save or of the save in progress, never anything else. Resident memory of the reader
process is sampled every 10 s; growth is judged after the first 10% of the run.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

REOPEN_EVERY = 200


def writer(map_path: Path, log_path: Path, seed: int) -> None:
    """The writer process's loop (runs until killed)."""
    import placekit as pk
    from placekit.tools.demo import render_view, render_world

    rng = np.random.default_rng(seed)
    world = render_world(seed)
    while True:
        with pk.Localizer.open(map_path) as loc:
            places = loc.map.places
            added = [int(i) for r, i in enumerate(places.ids) if places.name(r).startswith("w-")]
            pid = loc.add_place(render_view(world, float(rng.uniform()), rng), pk.Location(lat=55.7, lon=13.19),
                                name=f"w-{seed}-{rng.integers(1 << 40)}")
            if added and rng.uniform() < 0.5:
                loc.remove_place(added[int(rng.integers(len(added)))])
            ids = sorted(int(i) for i in loc.map.index.ids)
            with open(log_path, "a") as fh:
                fh.write(json.dumps({"saving": ids}) + "\n")
                fh.flush()
            loc.save()
            with open(log_path, "a") as fh:
                fh.write(json.dumps({"saved": pid}) + "\n")
                fh.flush()


def _states(log_path: Path) -> tuple[list[int] | None, list[int] | None]:
    """(ids of the last completed save, ids of the save in progress or None)."""
    last_done, pending = None, None
    for line in log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue                      # a line cut by the kill
        if "saving" in entry:
            pending = entry["saving"]
        elif "saved" in entry and pending is not None:
            last_done, pending = pending, None
    return last_done, pending


def _rss() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=1800)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--writer", nargs=3, metavar=("MAP", "LOG", "SEED"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.writer:
        writer(Path(args.writer[0]), Path(args.writer[1]), int(args.writer[2]))
        return
    import placekit as pk
    from placekit.tools.demo import render_view, render_world, write_dataset
    from placekit.mapfile.placemap import PlaceMap

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_dataset(tmp / "street", n_database=60, n_queries=1, n_foreign=0)
        builder = pk.MapBuilder(pk.BuildOptions())
        from placekit.ingest import read_locations_csv
        for name, loc in read_locations_csv(data / "database.csv").items():
            builder.add(data / "database" / name, loc, name)
        map_path = tmp / "live.pkmap"
        builder.build(map_path)
        base_ids = sorted(int(i) for i in PlaceMap.load(map_path).index.ids)
        world, rng = render_world(7), np.random.default_rng(0)
        frames = [render_view(world, (i + 0.5) / 16, rng) for i in range(16)]
        stop, errors, calls = threading.Event(), [], [0, 0]

        def reader(k: int) -> None:
            loc = pk.Localizer.open(map_path, pk.LocalizerOptions(threads=1))
            try:
                n = 0
                while not stop.is_set():
                    loc.localize(frames[n % len(frames)])
                    n += 1
                    calls[k] += 1
                    if n % REOPEN_EVERY == 0:
                        loc.close()
                        loc = pk.Localizer.open(map_path, pk.LocalizerOptions(threads=1))
            except Exception as exc:          # noqa: BLE001 - recorded as a failure
                errors.append(f"reader {k}: {type(exc).__name__}: {exc}")
            finally:
                loc.close()
        threads = [threading.Thread(target=reader, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        log = tmp / "writer.log"
        kills, checks, bad, samples = 0, 0, [], []
        start = time.monotonic()
        next_sample = start
        seed = 0
        while time.monotonic() - start < args.seconds and not errors:
            seed += 1
            proc = subprocess.Popen([sys.executable, __file__, "--writer", str(map_path), str(log), str(seed)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(float(np.random.default_rng(seed).uniform(0.5, 3.0)))
            proc.send_signal(signal.SIGKILL)
            stderr = proc.communicate()[1].decode(errors="replace")
            kills += 1
            if proc.returncode not in (-signal.SIGKILL, 0):
                bad.append(f"writer {seed} failed before the kill: {stderr[-500:]}")
            done, pending = _states(log) if log.exists() else (None, None)
            try:
                placemap = PlaceMap.load(map_path, verify=True)
                ids = sorted(int(i) for i in placemap.index.ids)
                placemap.close()
            except pk.PlacekitError as exc:
                bad.append(f"after kill {kills}: the map does not open: {exc}")
                break
            checks += 1
            if ids not in [s for s in (done or base_ids, pending) if s is not None]:
                bad.append(f"after kill {kills}: ids {ids[-3:]}... are neither the last save nor the pending one")
            if time.monotonic() >= next_sample:
                samples.append({"t": round(time.monotonic() - start, 1), "rss": _rss(), "calls": sum(calls)})
                next_sample += 10.0
        stop.set()
        for t in threads:
            t.join()
        leftovers = [p.name for p in tmp.iterdir() if p.name.endswith(".tmp")]
        completed = log.read_text().count('"saved"') if log.exists() else 0
    warm = [s for s in samples if s["t"] >= 0.1 * args.seconds]
    growth = (warm[-1]["rss"] - warm[0]["rss"]) / warm[0]["rss"] if len(warm) >= 2 else None
    result = {"seconds": args.seconds, "writer_kills": kills, "completed_saves": completed,
              "post_kill_checks": checks, "reader_calls": sum(calls),
              "reader_errors": errors, "integrity_failures": bad, "rss_growth_after_warmup": growth,
              "rss_samples": samples, "temp_files_left_by_kills": len(leftovers)}
    save(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "rss_samples"}, indent=1))
    sys.exit(1 if errors or bad else 0)


if __name__ == "__main__":
    main()
