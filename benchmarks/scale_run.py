"""Scale run: a map of >= 100k places from real descriptors, through MapBuilder and Localizer.

    python benchmarks/scale_run.py --places 100000 --cache /tmp/scale_descriptors.npz \
        --out benchmarks/results/scale.json

Places: every image in ``shared/data`` (Strecha, KITTI, HPatches, the landmark pool, IE Tower;
about 3.1k photos) and augmented crops of them (random crops of 35-100% of the area, aspect
jitter, brightness / contrast changes), each described by the shipped GeM through
``GlobalExtractor`` at the model's default input size. A photo and its crops share one
location, distinct from every other photo's. Queries: 1,000 further crops with other random
draws, not in the map.

Reports: extraction rate; map build time, file size, bytes per place; open time (fresh
process, with and without sha256 verification); search latency of the index alone and of
``Localizer.localize`` on the query crops; recall@1 and @10 of the index against exact search
of the same projected vectors, and the share of queries whose top-1 shows their source photo
(index vs exact float search of the raw 1280-D descriptors).
Descriptors are cached in ``--cache`` so the map part can be re-run without re-extraction.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = ("strecha/*/images/*.jpg", "kitti/*/image_l/*.png", "hpatches/*/*.ppm", "hpatches/*/*.png",
           "pool/*/*", "ie_tower/processed_frames/*/*")
MAX_SIDE = 640
N_QUERIES = 1000


def source_images() -> list[Path]:
    paths = sorted({p for g in SOURCES for p in DATA.glob(g) if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".ppm")})
    return paths


def augment(bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop (35-100% of the area, aspect x0.75-1.33) with brightness / contrast jitter."""
    h, w = bgr.shape[:2]
    area = rng.uniform(0.35, 1.0) * h * w
    aspect = np.exp(rng.uniform(np.log(0.75), np.log(1.33))) * w / h
    ch = int(min(h, max(32, np.sqrt(area / aspect))))
    cw = int(min(w, max(32, ch * aspect)))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = bgr[y:y + ch, x:x + cw].astype(np.float32)
    crop = crop * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25)
    return np.clip(crop, 0, 255).astype(np.uint8)


def extract(places: int, threads: int, seed: int) -> dict:
    from placekit.inference.engine import open_engine
    from placekit.inference.extractors import GlobalExtractor
    from placekit.inference.imageio import read_image
    from placekit.inference.catalog import resolve_model

    extractor = GlobalExtractor(open_engine(resolve_model("default"), threads=threads))
    paths = source_images()
    per_image = int(np.ceil(places / len(paths)))
    rng = np.random.default_rng(seed)
    db, db_src, q, q_src = [], [], [], []
    query_sources = set(rng.choice(len(paths), N_QUERIES, replace=len(paths) < N_QUERIES).tolist())
    t0 = time.perf_counter()
    for i, path in enumerate(paths):
        bgr = read_image(path)
        scale = MAX_SIDE / max(bgr.shape[:2])
        if scale < 1:
            bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        for j in range(per_image):
            db.append(extractor.describe_bgr(bgr if j == 0 else augment(bgr, rng)))
            db_src.append(i)
        if i in query_sources:
            q.append(extractor.describe_bgr(augment(bgr, rng)))
            q_src.append(i)
        if i % 200 == 0:
            print(f"{i}/{len(paths)} photos, {len(db)} descriptors, {time.perf_counter() - t0:.0f} s", flush=True)
    seconds = time.perf_counter() - t0
    return {"db": np.stack(db)[:places], "db_src": np.array(db_src)[:places], "q": np.stack(q),
            "q_src": np.array(q_src), "photos": len(paths), "extract_s": seconds}


PROBE = r"""
import json, sys, time
from placekit.mapfile.placemap import PlaceMap
t = time.perf_counter(); m = PlaceMap.load(sys.argv[1], verify=sys.argv[2] == '1'); s = time.perf_counter() - t
m.close(); print(json.dumps({"open_ms": s * 1000}))
"""


def open_ms(path: Path, verify: bool, repeats: int = 5) -> float:
    import json
    runs = [json.loads(subprocess.run([sys.executable, "-c", PROBE, str(path), "1" if verify else "0"],
                                      capture_output=True, text=True, check=True).stdout)["open_ms"]
            for _ in range(repeats)]
    return float(np.median(runs))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--places", type=int, default=100000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if not DATA.is_dir():
        print(f"scale run skipped: {DATA} is not present")
        return
    if args.cache and args.cache.is_file():
        data = dict(np.load(args.cache))
        data = {k: (v.item() if v.ndim == 0 else v) for k, v in data.items()}
    else:
        data = extract(args.places, args.threads, args.seed)
        if args.cache:
            np.savez(args.cache, **data)
    result = {"places": int(len(data["db"])), "photos": int(data["photos"]), "queries": int(len(data["q"])),
              "extract_s": float(data["extract_s"]),
              "extract_ms_per_image": float(data["extract_s"] * 1000 / (len(data["db"]) + len(data["q"])))}
    result.update(build_and_measure(data, args.threads))
    print(save(args.out, result))


def build_and_measure(data: dict, threads: int) -> dict:
    from placekit import Localizer, LocalizerOptions, Location, MapBuilder
    from placekit.options import BuildOptions

    db, db_src, q, q_src = data["db"], data["db_src"], data["q"], data["q_src"]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scale.pkmap"
        builder = MapBuilder(BuildOptions(threads=threads))
        for i, (d, src) in enumerate(zip(db, db_src)):
            builder.add_descriptor(d, Location(x=100.0 * float(src), y=0.0), f"p{src:05d}_{i:06d}")
        t = time.perf_counter()
        info = builder.build(path)
        out.update(build_s=time.perf_counter() - t, recipe=info.index["recipe"], file_bytes=path.stat().st_size,
                   bytes_per_place=path.stat().st_size / len(db))
        out.update(open_ms_verified=open_ms(path, True), open_ms_unverified=open_ms(path, False))
        with Localizer.open(path, LocalizerOptions(threads=threads)) as loc:
            index = loc.map.index
            from bench_index import ours_ram_bytes
            out["ram_bytes_per_place"] = ours_ram_bytes(index, False) / len(db)
            z_db = index._transform(db)
            z_q = index._transform(q)
            times, found = [], []
            for query in q:
                t = time.perf_counter()
                ids, _ = index.search(query, k=10)
                times.append(time.perf_counter() - t)
                found.append(ids)
            exact = np.argsort(-(z_q @ z_db.T), axis=1)[:, :10]
            raw_exact = np.argmax(q @ db.T, axis=1)
            out["search_ms_p50"] = float(np.percentile(times, 50) * 1000)
            out["search_ms_p99"] = float(np.percentile(times, 99) * 1000)
            out["recall_at_1_vs_exact"] = float(np.mean([len(f) and f[0] == e[0] for f, e in zip(found, exact)]))
            out["recall_at_10_vs_exact"] = float(np.mean([e[0] in f for f, e in zip(found, exact)]))
            out["source_photo_at_1_index"] = float(np.mean([len(f) and db_src[f[0]] == s for f, s in zip(found, q_src)]))
            out["source_photo_at_1_exact_raw"] = float(np.mean(db_src[raw_exact] == q_src))
            rng = np.random.default_rng(1)
            frames = [augment(np.full((480, 640, 3), 128, np.uint8), rng) for _ in range(3)]
            loc.localize(frames[0])
            stages = [loc.localize(np.ascontiguousarray(frames[i % 3])).timings_ms for i in range(200)]
            out["localize_ms_p50"] = {k: float(np.median([s[k] for s in stages])) for k in stages[0]}
    return out


if __name__ == "__main__":
    main()
