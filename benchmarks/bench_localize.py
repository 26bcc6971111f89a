"""End-to-end ``localize(frame)`` latency per stage with a shipped model at its default input
size, on 1 and 2 threads.

    python benchmarks/bench_localize.py --frames 200 --out benchmarks/results/localize.json

The map is the demo street (60 places, rendered by ``placekit.tools.demo``); frames are held-out
views at 640x480 and the same views upscaled to 1280x960 (a phone/robot camera), passed as
BGR arrays (decoding a JPEG is not part of ``localize``; it is reported separately).

``--verified`` (needs ``../shared/data``) times ``localize`` with geometric verification of the
top 5 places and a 6-DoF pose, per stage, against GeM alone on the same map in the same run:
maps of the even-numbered images of Strecha fountain-P11 and Herz-Jesus-P25 with their
cameras (HardNet int8 local features), queries the odd-numbered images as 640x480 BGR frames
(resized and centre-cropped; their intrinsics adjusted and given). Configurations name the
detector and the keypoints per query:

    python benchmarks/bench_localize.py --verified --frames 200 --out benchmarks/results/localize_verified.json
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
import dense_peers  # noqa: E402
from provenance import save  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# name: (local features, detector, map keypoints, query keypoints, long side they are found at,
# local features extracted beside the global model: LocalizerOptions.overlap_local_features[,
# other LocalizerOptions fields])
VERIFIED_CONFIGS = {
    "HardNet, sift 1024 / 1024": ("hardnet-int8", "sift", 1024, None, 640, True),
    "HardNet, sift 1024 / 256": ("hardnet-int8", "sift", 1024, 256, 640, True),
    "HardNet, orb 1024 / 256": ("hardnet-int8", "orb", 1024, 256, 640, True),
    "HardNet at 480 px, 512 / 512": ("hardnet-int8", "sift", 512, None, 480, True),
    "HardNet-C16, 512 / 512": ("hardnet-c16-int8", "sift", 512, None, 640, True),
    "HardNet-C16 at 480 px, 512 / 512": ("hardnet-c16-int8", "sift", 512, None, 480, True),
    "HardNet-C16, 1024 / 1024 (the default before)": ("hardnet-c16-int8", "sift", 1024, None, 640, True),
    "HardNet-C16 at 480 px, 1024 / 1024": ("hardnet-c16-int8", "sift", 1024, None, 480, True),
    "HardNet-C16, 1024 / 512 (default)": ("hardnet-c16-int8", "sift", 1024, 512, 640, True),
    "HardNet-C16 at 480 px, 1024 / 512": ("hardnet-c16-int8", "sift", 1024, 512, 480, True),
    "HardNet-C16, 1024 / 512 (default), numpy's BLAS threads as they are": (
        "hardnet-c16-int8", "sift", 1024, 512, 640, True, {"blas_threads": None}),
    "HardNet-C16, 1024 / 1024, numpy's BLAS threads as they are": (
        "hardnet-c16-int8", "sift", 1024, None, 640, True, {"blas_threads": None}),
    "HardNet-C16 at 480 px, 1024 / 768": ("hardnet-c16-int8", "sift", 1024, 768, 480, True),
    "HardNet-C8, 1024 / 1024": ("hardnet-c8-int8", "sift", 1024, None, 640, True),
    "HardNet-C8 at 480 px, 1024 / 1024": ("hardnet-c8-int8", "sift", 1024, None, 480, True),
    "RootSIFT, 512 / 512": ("rootsift", "sift", 512, None, 640, True),
    "RootSIFT at 480 px, 512 / 512": ("rootsift", "sift", 512, None, 480, True),
    "RootSIFT at 480 px, 512 / 512, stages in sequence": ("rootsift", "sift", 512, None, 480, False),
    "RootSIFT at 320 px, 512 / 512": ("rootsift", "sift", 512, None, 320, True),
    "XFeat (peer), dense 1024 / 1024": ("xfeat", "sift", 1024, None, 640, True),
    "XFeat (peer), dense 1024 / 512": ("xfeat", "sift", 1024, 512, 640, True),
    "DISK (peer), dense 1024 / 1024": ("disk", "sift", 1024, None, 640, True),
}


def _model_available(name: str) -> bool:
    """Whether a local model name resolves (HardNet-C8 is measured but not shipped)."""
    from placekit.errors import ModelNotFoundError
    from placekit.inference.catalog import resolve_model

    try:
        resolve_model(name)
    except ModelNotFoundError:
        return False
    return True


def _frame_640x480(path: Path, intrinsics: tuple[float, ...]) -> tuple[np.ndarray, tuple[float, ...]]:
    """A 640x480 BGR frame of an image (resized to 480 rows, centre-cropped) and its intrinsics."""
    img = cv2.imread(str(path))
    s = 480 / img.shape[0]
    img = cv2.resize(img, (round(img.shape[1] * s), 480), interpolation=cv2.INTER_AREA)
    x0 = (img.shape[1] - 640) // 2
    fx, fy, cx, cy = intrinsics
    return img[:, x0 : x0 + 640].copy(), (fx * s, fy * s, cx * s - x0, cy * s)


def verified_runs(frames: int, threads: int, tmp: Path, peers: dict[str, Path],
                  configs: list[str] | None = None, repeats: int = 1) -> list[dict]:
    """Per-stage latency with verification + pose, and GeM alone on the same maps; ``repeats``
    timed passes over the frames per configuration (each pass's p50 is kept: the spread is this
    machine's run-to-run noise)."""
    from bench_pose import strecha

    rows = []
    for scene in ("fountain-P11", "Herz-Jesus-P25"):
        samples = strecha(scene)
        db, queries = samples[::2], samples[1::2]
        frames_k = [_frame_640x480(img, intr) for img, _, _, intr in queries]
        for name, (local, detector, map_kp, query_kp, max_side, overlap, *more) in VERIFIED_CONFIGS.items():
            if configs and name not in configs:
                continue
            if local in dense_peers.LABELS:  # a dense model is its own detector
                if local not in peers:
                    continue
                local = str(peers[local])
            elif local != "rootsift" and not _model_available(local):
                print(f"{name}: skipped, {local} is not installed (not shipped; see localize_c8.json's note)")
                continue
            builder = pk.MapBuilder(pk.BuildOptions(match_radius_m=5.0, local_features=local, local_max_side=max_side,
                                                    local_detector=detector, max_keypoints=map_kp, threads=threads))
            for img, c, q, intr in db:
                builder.add(img, pk.Location(x=c[0], y=c[1], z=c[2], rotation=q, intrinsics=intr), img.name)
            path = tmp / f"{scene}-{len(rows)}.pkmap"
            builder.build(path)
            variants = {name: True} if rows and any(r["config"] == "GeM only" and r["scene"] == scene for r in rows) \
                else {"GeM only": False, name: True}
            for label, verify in variants.items():
                stages: dict[str, list[float]] = {}
                poses = 0
                opts = pk.LocalizerOptions(threads=threads, verify=verify, intrinsics=frames_k[0][1],
                                           query_keypoints=query_kp, overlap_local_features=overlap,
                                           **(more[0] if more else {}))
                run_p50 = []
                with pk.Localizer.open(path, opts) as loc:
                    for f, _ in frames_k[:3]:
                        loc.localize(f)
                    for _ in range(repeats):
                        totals = []
                        for i in range(frames):
                            r = loc.localize(frames_k[i % len(frames_k)][0])
                            poses += r.pose is not None
                            totals.append(r.timings_ms["total"])
                            for k, v in r.timings_ms.items():
                                stages.setdefault(k, []).append(v)
                        run_p50.append(float(np.percentile(totals, 50)))
                rows.append({"scene": scene, "config": label, "frame": "640x480", "threads": threads,
                             "pose_share": poses / (frames * repeats), "total_p50_ms_per_run": run_p50, "stages": {
                                 k: {"p50_ms": float(np.percentile(v, 50)), "p99_ms": float(np.percentile(v, 99))}
                                 for k, v in stages.items()}})
                print(scene, label, {k: round(v["p50_ms"], 1) for k, v in rows[-1]["stages"].items()},
                      "p99 total", round(rows[-1]["stages"]["total"]["p99_ms"], 1), "p50 per pass", [round(v, 1) for v in run_p50], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--verified", action="store_true", help="verification + pose latency on Strecha (../shared)")
    p.add_argument("--threads", type=int, default=2, help="threads for --verified")
    p.add_argument("--repeats", type=int, default=1, help="--verified: timed passes per configuration")
    dense_peers.add_arguments(p)
    p.add_argument("--configs", nargs="*", default=None, help=f"--verified configurations (default: all): {list(VERIFIED_CONFIGS)}")
    args = p.parse_args()
    if args.verified:
        if not DATA.is_dir():
            print(f"verified latency skipped: {DATA} is not present")
            return
        with tempfile.TemporaryDirectory() as tmp:
            rows = verified_runs(args.frames, args.threads, Path(tmp), dense_peers.export_peers(Path(tmp), args),
                                 args.configs, args.repeats)
        save(args.out, {"verify_top": 5, "configs": {
            k: {"local_features": lf, "detector": d, "map_keypoints": m, "query_keypoints": q, "local_max_side": s,
                "overlap_local_features": o, **(more[0] if more else {})}
            for k, (lf, d, m, q, s, o, *more) in VERIFIED_CONFIGS.items()}, "runs": rows})
        return
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
