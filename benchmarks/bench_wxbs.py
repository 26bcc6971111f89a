"""Local features on WxBS: extreme wide-baseline pairs (day/night, seasons, viewpoint).

    python benchmarks/bench_wxbs.py --xfeat-weights PATH/xfeat.pt --disk-weights PATH/disk-depth-save.pth \
        --out benchmarks/results/wxbs.json

For each of the 33 pairs of ``../shared/data/wxbs`` (evaluation only) and each method: local
features of both images (at <= 640 px long side, as the runtime extracts them), mutual
nearest-neighbour matches with the runtime's ratio test (ORB: Hamming distances, the same rule),
then a fundamental matrix by OpenCV's USAC (MAGSAC++, 3 px at the images' own resolution). The
hand-labelled correspondences of the pair judge the estimate: their symmetric epipolar distance
under it. A pair **agrees** when the mean distance is at most twice the labels' own noise (the
mean of ``crossval_errors.txt``: each label's leave-one-out error under an 8-point F fitted on the
others), and at least 2 px. Also reported: the share of pairs under 5, 10 and 20 px mean
distance, milliseconds per WxBS image (extraction only, 2 threads), and milliseconds per 640x480
frame on 1 and 2 threads.

Methods: RootSIFT (OpenCV), ORB (OpenCV detector and binary descriptor), HardNet int8 on SIFT
keypoints (placekit's default), HardNet int8 on ORB keypoints, and the dense peers XFeat and
DISK (``dense_peers.py``: exported here from their packages' weights when given).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import dense_peers  # noqa: E402
from provenance import save  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wxbs"
MAX_SIDE = 640
KEYPOINTS = 1024
MIN_AGREE_PX = 2.0
PX_BINS = (5.0, 10.0, 20.0)


def symmetric_epipolar(F: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """(N,) symmetric epipolar distances (px) of correspondences x1 <-> x2 (N, 2) under F."""
    h1, h2 = np.c_[x1, np.ones(len(x1))], np.c_[x2, np.ones(len(x2))]
    l2, l1 = h1 @ F.T, h2 @ F
    d = np.abs((h2 * l2).sum(1))
    return d / np.hypot(l2[:, 0], l2[:, 1]) + d / np.hypot(l1[:, 0], l1[:, 1])


def orb_features(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = min(1.0, MAX_SIDE / max(gray.shape))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
    kps, desc = cv2.ORB_create(nfeatures=KEYPOINTS).detectAndCompute(small, None)
    if desc is None or len(kps) == 0:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    return np.array([k.pt for k in kps], np.float32) / scale, desc


def orb_matches(d1: np.ndarray, d2: np.ndarray, ratio: float) -> np.ndarray:
    if len(d1) < 2 or len(d2) < 2:
        return np.zeros((0, 2), np.int64)
    bf = cv2.BFMatcher(cv2.NORM_HAMMING)
    fwd = bf.knnMatch(d1, d2, k=2)
    back = {m.queryIdx: m.trainIdx for m in bf.match(d2, d1)}
    keep = [(a.queryIdx, a.trainIdx) for a, b in (p for p in fwd if len(p) == 2)
            if a.distance < ratio * b.distance and back.get(a.trainIdx) == a.queryIdx]
    return np.array(keep, np.int64).reshape(-1, 2)


def methods(tmp: Path, args: argparse.Namespace, threads: int = 2) -> dict:
    from placekit.inference.loading import local_extractor
    from placekit.options import RuntimeOptions

    runtime = RuntimeOptions(threads=threads)
    out = {"RootSIFT (OpenCV)": local_extractor("rootsift", KEYPOINTS, MAX_SIDE, runtime)[0],
           "ORB (OpenCV)": "orb",
           "HardNet int8, SIFT keypoints (placekit default)":
               local_extractor("hardnet-int8", KEYPOINTS, MAX_SIDE, runtime, spin=False)[0],
           "HardNet int8, ORB keypoints": local_extractor("hardnet-int8", KEYPOINTS, MAX_SIDE, runtime, spin=False,
                                                          detector="orb")[0]}
    for name, path in dense_peers.export_peers(tmp, args).items():
        out[dense_peers.LABELS[name]] = local_extractor(str(path), KEYPOINTS, MAX_SIDE, runtime, spin=False)[0]
    out.update(dense_peers.torch_peers(args, KEYPOINTS, MAX_SIDE, threads))
    if args.only:
        out = {k: v for k, v in out.items() if k in args.only}
    return out


def evaluate(method, pairs: list[dict]) -> dict:
    from placekit.local.matching import DEFAULT_RATIO, mutual_matches

    errors, ms, agree = [], [], []
    for p in pairs:
        grays = [cv2.imread(str(DATA / p[k]), cv2.IMREAD_GRAYSCALE) for k in ("img1", "img2")]
        t = time.perf_counter()
        if method == "orb":
            (x1, d1), (x2, d2) = orb_features(grays[0]), orb_features(grays[1])
            m = orb_matches(d1, d2, DEFAULT_RATIO)
        else:
            f1, f2 = method.extract(grays[0]), method.extract(grays[1])
            x1, x2 = f1.xy, f2.xy
            m = mutual_matches(f1.descriptors, f2.descriptors)
        ms.append((time.perf_counter() - t) * 1000 / 2)
        F = None
        if len(m) >= 8:
            try:
                F, _ = cv2.findFundamentalMat(x1[m[:, 0]], x2[m[:, 1]], cv2.USAC_MAGSAC, 3.0, 0.999, 10000)
            except cv2.error:
                F = None
        labels = np.loadtxt(DATA / p["corrs"]).reshape(-1, 4)
        noise = float(np.mean(np.loadtxt(DATA / p["corrs"].replace("corrs.txt", "crossval_errors.txt"))))
        err = float("inf") if F is None or F.shape != (3, 3) else float(
            np.mean(symmetric_epipolar(F, labels[:, :2], labels[:, 2:])))
        errors.append(err)
        agree.append(err <= max(2 * noise, MIN_AGREE_PX))
    e = np.array(errors)
    return {"pairs": len(pairs), "agree_share": float(np.mean(agree)),
            "within_px": {f"{b:g}": float(np.mean(e <= b)) for b in PX_BINS},
            "median_error_px": float(np.median(e)), "ms_per_image_p50": float(np.median(ms)),
            "per_pair_error_px": {f"{p['category']}/{p['pair']}": (None if not np.isfinite(v) else round(v, 2))
                                  for p, v in zip(pairs, errors)}}


def frame_ms(method, frames: list[np.ndarray]) -> float:
    """p50 ms to extract one 640x480 frame's local features (ORB: detect + describe)."""
    times = []
    for i in range(3 + 2 * len(frames)):
        gray = frames[i % len(frames)]
        t = time.perf_counter()
        if method == "orb":
            orb_features(gray)
        else:
            method.extract(gray)
        if i >= 3:
            times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dense_peers.add_arguments(p)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--only", nargs="*", default=None, help="only these methods (their labels)")
    args = p.parse_args()
    if not DATA.is_dir():
        print(f"WxBS benchmark skipped: {DATA} is not present")
        return
    with open(DATA / "pairs.csv", newline="") as fh:
        pairs = list(csv.DictReader(fh))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, method in methods(Path(tmp), args).items():
            results[name] = evaluate(method, pairs)
            r = results[name]
            print(name, {k: r[k] for k in ("agree_share", "within_px", "median_error_px", "ms_per_image_p50")},
                  flush=True)
        # ms per 640x480 frame on 1 and 2 threads (OpenCV's own threads follow cv2.setNumThreads)
        frames = [cv2.resize(cv2.imread(str(DATA / p["img1"]), cv2.IMREAD_GRAYSCALE), (640, 480)) for p in pairs[:10]]
        for threads in (1, 2):
            cv2.setNumThreads(threads)
            for name, method in methods(Path(tmp), args, threads).items():
                ms = frame_ms(method, frames)
                results[name][f"ms_per_640x480_frame_threads_{threads}"] = ms
                print(name, threads, "threads:", round(ms, 1), "ms", flush=True)
    save(args.out, {"max_side": MAX_SIDE, "keypoints": KEYPOINTS, "results": results})


if __name__ == "__main__":
    main()
