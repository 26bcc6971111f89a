"""Geometric verification of retrieved places with local features.

For a query and a retrieved place: mutual nearest-neighbour matches with a ratio test between
their local descriptors, then the matches one epipolar geometry explains (OpenCV USAC,
``placekit.local.matching``). The inlier count re-ranks the candidates and feeds the decision.
Its calibration (the inlier count that makes an answer trustworthy on a given map) is
``placekit.decision.calibration.calibrate_inliers``.
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
