"""Map build throughput: single process against Ray with 1 and 2 workers, on real photos.

    python benchmarks/bench_distributed_build.py --images 240 --out benchmarks/results/distributed_build.json

Images: the first ``--images`` photos of ``shared/data`` (landmark pool, Strecha, then IE Tower frames), each at
a made-up local position (throughput does not depend on it). Every configuration builds the
same map with default ``BuildOptions`` (GeM, index ``auto``) from the same image list:

- single process, ``threads=2`` (ONNX Runtime uses both cores for each image);
- single process, ``threads=1``;
- Ray, local instance with 1 CPU, one task at a time, ``threads=1``;
- Ray, local instance with 2 CPUs, two tasks at a time, ``threads=1``.

Reported: images/s of ``add_folder``-style extraction (``add_many``) and of the whole build
(extraction + index + calibration + write), Ray start-up time apart, and how each map's members
compare with the single-process ``threads=1`` map's (same inputs and seed: identical, or float
arrays a last bit apart where the training task's BLAS rounded differently).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
from provenance import save  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = ("pool/*/*.jpg", "strecha/*/images/*.jpg", "ie_tower/processed_frames/*/*.jpg")


def images(n: int) -> list[Path]:
    found: list[Path] = []
    for pattern in SOURCES:
        found += sorted(DATA.glob(pattern))
    return found[:n]


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist() if n != "manifest.json"}


def compare(path: Path, reference: Path) -> dict:
    """Members byte for byte; float arrays that differ: their largest difference (training on a
    worker may round a last bit differently: other BLAS threads, other memory alignment)."""
    ours, theirs = members(path), members(reference)
    differing = sorted(n for n in ours if ours[n] != theirs.get(n))
    worst = 0.0
    for name in differing:
        a, b = np.load(io.BytesIO(ours[name])), np.load(io.BytesIO(theirs[name]))
        if a.dtype.kind != "f" or a.shape != b.shape:
            return {"identical": False, "differing": differing, "float_only": False}
        worst = max(worst, float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()))
    return {"identical": not differing, "differing": differing, "float_only": True, "max_float_diff": worst}


def run(name: str, paths: list[Path], out: Path, threads: int, ray_cpus: int | None) -> dict:
    import placekit as pk

    t0 = time.perf_counter()
    executor = pk.RayExecutor("local", num_cpus=ray_cpus) if ray_cpus else pk.LocalExecutor()
    startup = time.perf_counter() - t0
    try:
        builder = pk.MapBuilder(pk.BuildOptions(threads=threads), executor=executor)
        items = [(p, pk.Location(x=5.0 * i, y=0.0, z=0.0), f"{i:05d}_{p.name}") for i, p in enumerate(paths)]
        t = time.perf_counter()
        builder.add_many(items)
        extract = time.perf_counter() - t
        builder.build(out)
        total = time.perf_counter() - t
    finally:
        executor.close()
    return {"config": name, "images": len(paths), "startup_s": startup, "extract_s": extract,
            "extract_images_per_s": len(paths) / extract, "build_s": total, "build_images_per_s": len(paths) / total}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=240)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is not present")
        return
    paths = images(args.images)
    configs = [("single process, threads=2", 2, None), ("single process, threads=1", 1, None),
               ("Ray, 1 worker, threads=1", 1, 1), ("Ray, 2 workers, threads=1", 1, 2)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        maps = {}
        for name, threads, cpus in configs:
            maps[name] = Path(tmp) / f"{len(maps)}.pkmap"
            rows.append(run(name, paths, maps[name], threads, cpus))
            print(rows[-1], flush=True)
        for row in rows:
            row["vs_single_process_threads_1"] = compare(maps[row["config"]], maps["single process, threads=1"])
    base = next(r for r in rows if r["config"] == "single process, threads=2")
    for row in rows:
        row["extract_speedup_vs_single_threads_2"] = row["extract_images_per_s"] / base["extract_images_per_s"]
    print(save(args.out, {"rows": rows}))


if __name__ == "__main__":
    main()
