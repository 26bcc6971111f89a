"""Held-out retrieval sets and their metrics, for GeM training logs and model comparisons.

Every set here is kept out of GeM training (``placekit-train gem``):

* ``ie-tower-highrise``: IE Tower floors 17-23 (the "highrise" floor range), every other frame.
  Each frame queries all frames of the *other* clips; relevant = same area type (any floor).
  ``ie-tower-highrise-floor``: the same frames, relevant = same floor and area (the place itself;
  only frames of places captured in two or more clips count as queries).
* ``strecha-heldout``: Strecha entry-P10 and Herz-Jesus-P25 (Herz-Jesus-P8, the same building,
  is not trained on either). Odd images query even ones; relevant = same scene.
* ``kitti``: both KITTI snippets (never trained on: licence). Odd frames query even ones;
  relevant = within 5 m in the same snippet.

``*-dusk`` (``degraded_sets``): the same sets with every query seen through ``dusk_lens`` (a
quarter of the resolution, blur, 0.4x light, sensor noise, a grey occluder; seeded), the database
left clean: a robot revisiting a mapped place at dusk with a dirty lens. It is the degradation of
``benchmarks/bench_tracking.py``, so PyTorch and runtime figures describe the same condition.

Metrics: recall@1 (the top hit is relevant) and mAP over queries with at least one relevant item.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

HELDOUT_FLOOR_RANGE = "highrise"
HELDOUT_STRECHA = ("entry-P10", "Herz-Jesus-P25")
EXCLUDED_STRECHA = ("entry-P10", "Herz-Jesus-P25", "Herz-Jesus-P8")
KITTI_RADIUS_M = 5.0


@dataclass
class RetrievalSet:
    """database (Nd,) and queries (Nq,) image paths; relevant (Nq, Nd) bool; exclude (Nq, Nd)
    bool or None: database items a query must not see (its own capture clip)."""

    name: str
    database: list[Path]
    queries: list[Path]
    relevant: np.ndarray
    exclude: np.ndarray | None = None
    degraded_queries: bool = False  # queries pass through ``dusk_lens`` (seeded by their order)


def clip_of(path: str | Path) -> str:
    return re.sub(r"_frame_\d+\.\w+$", "", Path(path).name)


def ie_tower_rows(data: Path) -> list[dict]:
    return list(csv.DictReader(open(data / "ie_tower" / "dataset.csv")))


def _ie_tower_set(name: str, data: Path, rows: list[dict], per_floor: bool = False) -> RetrievalSet:
    """Every frame queries the frames of the other clips; relevant = same area type (with
    ``per_floor``: same floor *and* area, the instance)."""
    paths = [data / "ie_tower" / r["image_path"] for r in rows]
    area = np.array([f"{r['label']}/{r['area']}" if per_floor else r["area"] for r in rows])
    clip = np.array([clip_of(r["image_path"]) for r in rows])
    same_clip = clip[:, None] == clip[None]
    return RetrievalSet(name, paths, paths, (area[:, None] == area[None]) & ~same_clip, same_clip)


def ie_tower_heldout(data: Path, stride: int = 2, per_floor: bool = False) -> RetrievalSet:
    """The held-out floor range, every ``stride``-th frame."""
    rows = [r for r in ie_tower_rows(data) if r["floor_range"] == HELDOUT_FLOOR_RANGE][::stride]
    return _ie_tower_set("ie-tower-highrise-floor" if per_floor else "ie-tower-highrise", data, rows, per_floor)


def ie_tower_validation(data: Path, stride: int = 2) -> RetrievalSet:
    """Not a held-out set: the training floor ranges' frames that ``placekit-train gem`` skips
    (it takes every ``stride``-th one; these are the others, from the same clips). For choices made
    after training, such as the whitening's shrinkage, so the held-out sets are not tuned on.
    Relevant = same area type in another clip."""
    rows = [r for r in ie_tower_rows(data) if r["floor_range"] != HELDOUT_FLOOR_RANGE][1::stride]
    return _ie_tower_set("ie-tower-validation", data, rows)


def strecha_heldout(data: Path) -> RetrievalSet:
    db, q, db_scene, q_scene = [], [], [], []
    for scene in HELDOUT_STRECHA:
        for i, img in enumerate(sorted((data / "strecha" / scene / "images").glob("*.jpg"))):
            (db if i % 2 == 0 else q).append(img)
            (db_scene if i % 2 == 0 else q_scene).append(scene)
    return RetrievalSet("strecha-heldout", db, q, np.array(q_scene)[:, None] == np.array(db_scene)[None])


def kitti_set(data: Path) -> RetrievalSet:
    db, q, db_xyz, q_xyz = [], [], [], []
    for k, seq in enumerate(("seq1", "seq2")):
        poses = np.loadtxt(data / "kitti" / seq / "poses.txt").reshape(-1, 3, 4)
        for i, (img, pose) in enumerate(zip(sorted((data / "kitti" / seq / "image_l").glob("*.png")), poses)):
            xyz = pose[:, 3] + [1e4 * k, 0, 0]
            (db if i % 2 == 0 else q).append(img)
            (db_xyz if i % 2 == 0 else q_xyz).append(xyz)
    dist = np.linalg.norm(np.array(q_xyz)[:, None] - np.array(db_xyz)[None], axis=2)
    return RetrievalSet("kitti", db, q, dist <= KITTI_RADIUS_M)


DUSK_SEED = 0


def dusk_lens(bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 -> the same frame at dusk through a dirty lens: a quarter of the resolution,
    Gaussian blur (sigma 1.5), 0.4x brightness, sensor noise (sigma 8) and a flat grey occluder of
    30-45 % of the width and 60-90 % of the height."""
    import cv2

    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    out = cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), (0, 0), 1.5)
    out = out.astype(np.float32) * 0.4 + rng.normal(0, 8, out.shape)
    ow, oh = int(w * rng.uniform(0.3, 0.45)), int(h * rng.uniform(0.6, 0.9))
    x, y = rng.integers(0, w - ow), rng.integers(0, h - oh)
    out[y : y + oh, x : x + ow] = 60
    return np.clip(out, 0, 255).astype(np.uint8)


def degraded_sets(sets: list[RetrievalSet]) -> list[RetrievalSet]:
    """Each set again, its queries through ``dusk_lens`` (named ``NAME-dusk``)."""
    return [replace(rs, name=f"{rs.name}-dusk", degraded_queries=True) for rs in sets]


def heldout_sets(data: Path) -> list[RetrievalSet]:
    """The clean held-out sets, then the dusk variants of the IE Tower, Strecha and KITTI ones."""
    clean = [ie_tower_heldout(data), ie_tower_heldout(data, per_floor=True), strecha_heldout(data), kitti_set(data)]
    return clean + degraded_sets([rs for rs in clean if rs.name != "ie-tower-highrise-floor"])


def per_query_scores(
    db: np.ndarray, queries: np.ndarray, relevant: np.ndarray, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(hit at rank 1 (Nq',) bool, average precision (Nq',)) for the Nq' queries that have a
    relevant item. db (Nd, D), queries (Nq, D) unit rows; relevant / exclude (Nq, Nd) bool."""
    sims = queries @ db.T
    if exclude is not None:
        sims = np.where(exclude, -np.inf, sims)
    order = np.argsort(-sims, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    if exclude is not None:
        hits &= ~np.take_along_axis(exclude, order, axis=1)
    has = hits.any(1)
    ranks = np.arange(1, hits.shape[1] + 1)
    precision = np.cumsum(hits, 1) / ranks
    ap = (precision * hits).sum(1)[has] / hits.sum(1)[has]
    return hits[has, 0], ap


def retrieval_metrics(
    db: np.ndarray, queries: np.ndarray, relevant: np.ndarray, exclude: np.ndarray | None = None
) -> dict[str, float]:
    """Recall@1 and mAP over the queries that have a relevant item (``per_query_scores``)."""
    return summarize_scores(*per_query_scores(db, queries, relevant, exclude))


def summarize_scores(hit1: np.ndarray, ap: np.ndarray) -> dict[str, float]:
    """Per-query hit@1 (Nq,) and AP (Nq,) -> recall@1, mAP and the query count."""
    return {"recall_at_1": float(hit1.mean()), "mAP": float(ap.mean()), "queries": int(len(ap))}


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean of b - a over the same queries (a, b: (Nq,) per-query scores of two models) and its
    bootstrap confidence interval (queries resampled with replacement, ``n`` times)."""
    diff = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (n, len(diff)))].mean(1)
    tail = (1 - level) / 2 * 100
    return {
        "mean": float(diff.mean()),
        "low": float(np.percentile(means, tail)),
        "high": float(np.percentile(means, 100 - tail)),
    }
