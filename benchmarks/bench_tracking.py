"""Single-frame vs tracked localization on the KITTI snippets, with a kidnap between them.

    python benchmarks/bench_tracking.py --out benchmarks/results/tracking.json

Map: the even frames of seq1 and seq2 (seq2 shifted 1 km east: the two drives are different
streets). Queries: the odd frames of seq1, then those of seq2, as one 10 Hz stream (0.2 s
between queries); the jump from seq1 to seq2 is a kidnap. Positions are the poses' ground-plane
coordinates (KITTI camera x, z). Conditions: ``clean`` frames, and ``degraded`` frames (a
quarter of the resolution, blur, 0.4x brightness, sensor noise, a random grey occluder of a
third of the frame: a dirty lens at dusk; ``placekit_export.retrieval_eval.dusk_lens``), seeded. Modes: single-frame ``localize``; ``Tracker``
without odometry; ``Tracker`` with odometry (ground-truth displacement + 0.3 m noise).

Reported per condition and mode: share of queries answered ``localized`` within 5 m (recall),
share whose answer (any status with a location) is within 5 m,
precision of ``localized``, median error of the answers, frames until the first correct
``localized`` answer after the kidnap, and per-frame latency. KITTI is CC BY-NC-SA:
evaluation only. Exits with a message when ``shared/data`` is absent.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

from placekit_export.retrieval_eval import dusk_lens  # noqa: E402  (the held-out sets' degradation)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
THRESHOLD_M = 5.0
OFFSET_M = {"seq1": 0.0, "seq2": 1000.0}


def sequence(seq: str) -> tuple[list[Path], np.ndarray]:
    poses = np.loadtxt(DATA / "kitti" / seq / "poses.txt").reshape(-1, 3, 4)
    images = sorted((DATA / "kitti" / seq / "image_l").glob("*.png"))
    t = poses[:, :, 3]
    ground = np.stack([t[:, 0] + OFFSET_M[seq], t[:, 2], -t[:, 1]], axis=1)   # east, north, up
    return images, ground


def run_mode(localizer, mode: str, frames: list[np.ndarray], truth: np.ndarray, kidnap_at: int, rng) -> dict:
    import placekit as pk

    tracker = pk.Tracker(localizer) if mode != "single" else None
    answers, times = [], []
    for i, frame in enumerate(frames):
        t = time.perf_counter()
        if tracker is None:
            r = localizer.localize(frame)
        else:
            odo = None
            if mode == "tracked+odometry" and i > 0 and i != kidnap_at:
                odo = truth[i] - truth[i - 1] + rng.normal(0, 0.3, 3)
            r = tracker.track(frame, timestamp=0.2 * i, odometry=odo)
        times.append(time.perf_counter() - t)
        err = None if r.location is None else float(np.linalg.norm(localizer.to_metric(r.location)[:2] - truth[i, :2]))
        answers.append((r.status, err))
    ok = [s == "localized" and e <= THRESHOLD_M for s, e in answers]
    answered = [e is not None and e <= THRESHOLD_M for _, e in answers]
    localized = [e for s, e in answers if s == "localized"]
    errors = [e for _, e in answers if e is not None]
    recovery = next((k + 1 for k, good in enumerate(ok[kidnap_at:]) if good), None)
    return {"recall": float(np.mean(ok)), "answer_within_threshold": float(np.mean(answered)),
            "localized_share": len(localized) / len(answers),
            "localized_precision": float(np.mean(np.array(localized) <= THRESHOLD_M)) if localized else None,
            "median_error_m": float(np.median(errors)) if errors else None,
            "frames_to_recover_after_kidnap": recovery,
            "latency_ms_p50": float(np.median(times) * 1000)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--model", default="default", help="global model (default: the shipped default)")
    args = p.parse_args()
    if not DATA.is_dir():
        print(f"tracking benchmark skipped: {DATA} is not present")
        return
    import placekit as pk
    from placekit.inference.imageio import read_image

    builder = pk.MapBuilder(pk.BuildOptions(model=args.model, match_radius_m=THRESHOLD_M, threads=args.threads))
    queries, truth = [], []
    for seq in ("seq1", "seq2"):
        images, ground = sequence(seq)
        for i, (img, xyz) in enumerate(zip(images, ground)):
            if i % 2 == 0:
                builder.add(img, pk.Location(x=xyz[0], y=xyz[1], z=xyz[2]), f"{seq}_{img.name}", group=seq)
            else:
                queries.append(read_image(img))
                truth.append(xyz)
    kidnap_at = sum(1 for i in range(len(sequence("seq1")[0])) if i % 2 == 1)
    truth = np.array(truth)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kitti.pkmap"
        builder.build(path)
        with pk.Localizer.open(path, pk.LocalizerOptions(threads=args.threads)) as localizer:
            for condition in ("clean", "degraded"):
                rng = np.random.default_rng(0)
                frames = queries if condition == "clean" else [dusk_lens(q, rng) for q in queries]
                for mode in ("single", "tracked", "tracked+odometry"):
                    results[f"{condition}/{mode}"] = run_mode(localizer, mode, frames, truth, kidnap_at,
                                                              np.random.default_rng(1))
                    print(condition, mode, results[f"{condition}/{mode}"], flush=True)
    from placekit.inference.catalog import resolve_model

    model_file = resolve_model(args.model)
    label = model_file.stem if model_file.suffix == ".onnx" else model_file.name   # as `placekit models` names it
    save(args.out, {"model": label, "queries": len(queries), "kidnap_at_query": kidnap_at,
                    "threshold_m": THRESHOLD_M, "results": results})


if __name__ == "__main__":
    main()
