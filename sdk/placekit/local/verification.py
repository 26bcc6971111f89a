"""Geometric verification of retrieved places with local features.

For a query and a retrieved place: mutual nearest-neighbour matches with a ratio test between
their local descriptors, then the matches one epipolar geometry explains (OpenCV USAC,
``placekit.local.matching``). The inlier count re-ranks the candidates and feeds the decision.
Its calibration (the inlier count that makes an answer trustworthy on a given map) is
``placekit.decision.calibration.calibrate_inliers``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from placekit.local.matching import mutual_matches, verified_inliers
from placekit.mapfile.pointmap import PointMap

MIN_MATCHES = 8
NOT_VERIFIED = -1  # inliers of a place stored without local features, or left unchecked after an early exit
# A fundamental matrix fitted by RANSAC to a few hundred random matches of unrelated images
# explains 10-20 of them; counts from here up are evidence (also the floor of calibration).
DEFAULT_MIN_INLIERS = 25


@dataclass(frozen=True)
class Verification:
    """The query against K retrieved places, best first as given.

    inliers: (K,) int64 verified match counts, ``NOT_VERIFIED`` (-1) for places stored without
    local features (added live), which verification can neither confirm nor reject, and for
    places left unchecked after an early exit. query_rows / point_ids:
    per place, the query keypoint rows of its verified matches (m_k,) and the 3D point each
    matched place keypoint observes (m_k,), -1 for none: the 2D-3D correspondences a pose is
    solved from, without matching again."""

    inliers: np.ndarray
    query_rows: list[np.ndarray]
    point_ids: list[np.ndarray]

    def correspondences(self, places: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query rows (m,), point ids (m,)) of the places at indices ``places``, matches
        without a 3D point dropped, each (row, point) pair once."""
        chosen = [int(k) for k in places]
        if not chosen:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        pairs = np.stack(
            [np.concatenate([self.query_rows[k] for k in chosen]), np.concatenate([self.point_ids[k] for k in chosen])],
            axis=1,
        ).astype(np.int64)
        pairs = np.unique(pairs[pairs[:, 1] >= 0], axis=0)
        return pairs[:, 0], pairs[:, 1]

    def reordered(self, order: np.ndarray) -> Verification:
        """The same results with the places in ``order``."""
        return Verification(
            self.inliers[order], [self.query_rows[k] for k in order], [self.point_ids[k] for k in order]
        )


def inlier_matches(
    query_xy: np.ndarray, query_desc: np.ndarray, place_kps: np.ndarray, place_desc: np.ndarray
) -> np.ndarray:
    """(m, 2) verified matches (query row, place row); empty when too few or degenerate."""
    if len(query_desc) < MIN_MATCHES or len(place_desc) < MIN_MATCHES:
        return np.zeros((0, 2), np.int64)
    m = mutual_matches(query_desc, place_desc)
    if len(m) < MIN_MATCHES:
        return np.zeros((0, 2), np.int64)
    return m[verified_inliers(query_xy, place_kps[:, :2], m)]


def verify_places(
    query_xy: np.ndarray,
    query_desc: np.ndarray,
    pointmap: PointMap,
    place_ids: np.ndarray,
    decisive_inliers: int | None = None,
) -> Verification:
    """Verify the query (keypoints (N, 2), descriptors (N, D)) against each place, once, in the
    order given. With ``decisive_inliers``, the first place reaching that many inliers ends the
    verification: the places after it are left ``NOT_VERIFIED``."""
    inliers = np.full(len(place_ids), NOT_VERIFIED, np.int64)
    empty = np.zeros(0, np.int64)
    query_rows, point_ids = [empty] * len(place_ids), [empty] * len(place_ids)
    for k, pid in enumerate(place_ids):
        kps, desc, pids = pointmap.features_of(int(pid))
        if not len(kps):
            continue
        m = inlier_matches(query_xy, query_desc, kps, desc)
        inliers[k] = len(m)
        query_rows[k] = m[:, 0]
        point_ids[k] = np.asarray(pids, np.int64)[m[:, 1]]
        if decisive_inliers is not None and len(m) >= decisive_inliers:
            break
    return Verification(inliers, query_rows, point_ids)


def verify(query_xy: np.ndarray, query_desc: np.ndarray, pointmap: PointMap, place_ids: np.ndarray) -> np.ndarray:
    """(K,) inlier counts of the query against each place (``Verification.inliers``)."""
    return verify_places(query_xy, query_desc, pointmap, place_ids).inliers
