"""End-to-end ``localize(frame)`` latency per stage with a shipped model at its default input
size, on 1 and 2 threads.

    python benchmarks/bench_localize.py --frames 200 --out benchmarks/results/localize.json

The map is the demo street (60 places, rendered by ``placekit.tools.demo``); frames are held-out
views at 640x480 and the same views upscaled to 1280x960 (a phone/robot camera), passed as
BGR arrays (decoding a JPEG is not part of ``localize``; it is reported separately).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import placekit as pk
from placekit.ingest import read_locations_csv
from placekit.tools.demo import write_dataset
from placekit.inference.catalog import DEFAULT_MODEL

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp) / "street", n_database=60, n_queries=40, n_foreign=0)
        b = pk.MapBuilder(pk.BuildOptions(model=args.model, match_radius_m=10.0))
        for name, loc in read_locations_csv(root / "database.csv").items():
            b.add(root / "database" / name, loc, name)
        b.build(root / "street.pkmap")
        paths = sorted((root / "queries").iterdir())
        small = [cv2.imread(str(q)) for q in paths]
        t = time.perf_counter()
        for q in paths:
            cv2.imdecode(np.fromfile(q, np.uint8), cv2.IMREAD_COLOR)
        decode_ms = (time.perf_counter() - t) / len(paths) * 1000
        for size, frames in (("640x480", small), ("1280x960", [cv2.resize(f, (1280, 960)) for f in small])):
            for threads in (1, 2):
                with pk.Localizer.open(root / "street.pkmap", pk.LocalizerOptions(threads=threads)) as loc:
                    for f in frames[:10]:
                        loc.localize(f)
                    stages: dict[str, list[float]] = {}
                    for i in range(args.frames):
                        r = loc.localize(frames[i % len(frames)])
                        for k, v in r.timings_ms.items():
                            stages.setdefault(k, []).append(v)
                    input_shape = list(loc.extractor.info.fixed_size or ()) or loc.extractor.info.input_size
                rows.append({"frame": size, "threads": threads, "model_input": input_shape, "stages": {
                    k: {"p50_ms": float(np.percentile(v, 50)), "p99_ms": float(np.percentile(v, 99))}
                    for k, v in stages.items()}})
                print(size, threads, {k: round(v["p50_ms"], 2) for k, v in rows[-1]["stages"].items()}, flush=True)
    save(args.out, {"model": args.model, "map_places": 60, "jpeg_decode_640x480_ms": decode_ms, "runs": rows})


if __name__ == "__main__":
    main()
