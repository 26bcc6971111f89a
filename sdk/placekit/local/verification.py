"""Geometric verification of retrieved places with local features, and its calibration.

For a query and a retrieved place: mutual nearest-neighbour matches with a ratio test between
their local descriptors, then the matches one epipolar geometry explains (OpenCV USAC,
``placekit.local.matching``). The inlier count re-ranks the candidates and feeds the decision.

``calibrate_inliers`` runs the same verification between map images and their retrieved
neighbours (the image itself and its capture group left out) and picks the smallest inlier
count at which verified answers reach the target precision.
"""
from __future__ import annotations

import numpy as np

from placekit.local.matching import mutual_matches, verified_inliers
from placekit.mapfile.pointmap import PointMap

MIN_MATCHES = 8
# A fundamental matrix fitted by RANSAC to a few hundred random matches of unrelated images
# explains 10-20 of them; counts from here up are evidence (also the floor of calibration).
DEFAULT_MIN_INLIERS = 25


def count_inliers(query_xy: np.ndarray, query_desc: np.ndarray, place_kps: np.ndarray, place_desc: np.ndarray) -> int:
    if len(query_desc) < MIN_MATCHES or len(place_desc) < MIN_MATCHES:
        return 0
    m = mutual_matches(query_desc, place_desc)
    if len(m) < MIN_MATCHES:
        return 0
    return int(verified_inliers(query_xy, place_kps[:, :2], m).sum())


def verify(query_xy: np.ndarray, query_desc: np.ndarray, pointmap: PointMap, place_ids: np.ndarray) -> np.ndarray:
    """(K,) inlier counts of the query against each place; -1 for places stored without local
    features (added live), which verification can neither confirm nor reject."""
    out = np.zeros(len(place_ids), np.int64)
    for k, pid in enumerate(place_ids):
        kps, desc, _ = pointmap.features_of(int(pid))
        out[k] = count_inliers(query_xy, query_desc, kps, desc) if len(kps) else -1
    return out


def calibrate_inliers(index, descriptors: np.ndarray, ids: np.ndarray, positions: np.ndarray, pointmap: PointMap,
                      radius: float, target_precision: float, groups: np.ndarray | None = None,
                      top_k: int = 5, max_queries: int = 200, seed: int = 0) -> tuple[int, dict]:
    """Smallest inlier count whose verified top answers reach ``target_precision`` on the map's
    own images (leave-one-out / leave-group-out). Returns (min_inliers, stats)."""
    rng = np.random.default_rng(seed)
    n = len(ids)
    queries = np.arange(n) if n <= max_queries else np.sort(rng.choice(n, max_queries, replace=False))
    row_of = {int(i): r for r, i in enumerate(ids)}
    correct_counts, wrong_counts = [], []
    for q in queries:
        kps, desc, _ = pointmap.features_of(int(ids[q]))
        if len(kps) < MIN_MATCHES:
            continue
        same = groups == groups[q] if groups is not None else np.arange(n) == q
        found, _ = index.search(descriptors[q], k=top_k + int(same.sum()))
        rows = np.array([row_of[int(i)] for i in found if not same[row_of[int(i)]]][:top_k], np.int64)
        if len(rows) == 0:
            continue
        inliers = np.maximum(verify(kps[:, :2], desc, pointmap, ids[rows]), 0)
        best = int(np.argmax(inliers))
        near = np.linalg.norm(positions[rows[best]] - positions[q]) <= radius
        (correct_counts if near else wrong_counts).append(int(inliers[best]))
    pos, neg = np.array(correct_counts), np.array(wrong_counts)
    threshold = DEFAULT_MIN_INLIERS
    rule = f"default {DEFAULT_MIN_INLIERS}: too few calibration samples"
    if len(pos) >= 10:
        for t in range(DEFAULT_MIN_INLIERS, 200):
            a, b = int((pos >= t).sum()), int((neg >= t).sum())
            if a and a / (a + b) >= target_precision:
                threshold, rule = t, f"smallest count (>= {DEFAULT_MIN_INLIERS}) reaching the target precision"
                break
        else:
            rule = f"target precision never reached on the map's images: default {DEFAULT_MIN_INLIERS}"
    stats = {"queries": int(len(pos) + len(neg)), "correct": int(len(pos)), "wrong": int(len(neg)), "rule": rule,
             "recall_at_threshold": float((pos >= threshold).mean()) if len(pos) else None,
             "median_inliers_correct": float(np.median(pos)) if len(pos) else None,
             "median_inliers_wrong": float(np.median(neg)) if len(neg) else None}
    return int(threshold), stats
