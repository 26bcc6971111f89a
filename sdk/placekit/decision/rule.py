"""From retrieved places to an answer: fuse positions, decide localized / ambiguous / unknown.

Thresholds come from ``Calibration`` (fitted at map build by ``placekit.decision.calibration``).
Shapes: ``scores`` (k,) best first, ``positions`` (k, 3) metres in the map's local frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from placekit.decision.calibration import Calibration
from placekit.geometry.fusion import fuse, weighted_position
from placekit.types import Status

RIVAL_RADII = 2.0  # a rival answer lies farther than this many match radii from the best
AMBIGUOUS_CONFIDENCE = 0.5  # an ambiguous answer keeps this share of the best match's confidence
RIVAL_INLIER_SHARE = 0.8  # a verified rival has at least this share of the best's inliers


@dataclass(frozen=True)
class Decision:
    status: Status
    position: np.ndarray | None  # (3,)
    uncertainty_m: float | None
    confidence: float


def conflict_gap(scores: np.ndarray, positions: np.ndarray, radius: float, floor: float) -> float | None:
    """Score lead of the best match over the best match farther than 2 x radius (None if none)."""
    far = (np.linalg.norm(positions - positions[0], axis=1) > RIVAL_RADII * radius) & (scores >= floor)
    return float(scores[0] - scores[far].max()) if far.any() else None


def decide(scores: np.ndarray, positions: np.ndarray, cal: Calibration) -> Decision:
    if len(scores) == 0:
        return Decision("unknown", None, None, 0.0)
    best = float(scores[0])
    confidence = cal.confidence(best)
    if best < cal.unknown_threshold:
        return Decision("unknown", None, None, confidence)
    pos, spread, _ = fuse(scores, positions, cal.match_radius_m, cal.temperature, cal.unknown_threshold)
    uncertainty = float(np.hypot(cal.base_uncertainty_m, spread))
    gap = conflict_gap(scores, positions, cal.match_radius_m, cal.unknown_threshold)
    if gap is not None and gap < cal.ambiguity_margin:
        far = np.linalg.norm(positions - positions[0], axis=1)
        rivals = far[scores >= best - cal.ambiguity_margin]
        return Decision("ambiguous", pos, max(uncertainty, float(rivals.max())), AMBIGUOUS_CONFIDENCE * confidence)
    return Decision("localized", pos, uncertainty, confidence)


def decide_verified(
    base: Decision, scores: np.ndarray, positions: np.ndarray, inliers: np.ndarray, cal: Calibration, pose=None
) -> Decision:
    """Fold geometric verification into a decision, on maps where it is decisive
    (``cal.verification_decisive``; elsewhere the similarity decision stands). Verified
    candidates (inliers >= ``cal.min_inliers``) come first. A verified best is trusted:
    ``localized`` (``ambiguous`` if a place farther than 2 x radius is verified nearly as well),
    its position the pose's camera centre when there is a pose, else the inlier-weighted mean of
    the verified places near it; a pose settles ambiguity between far views of the same
    structure. An unverified best is ``unknown``: on these maps failing to verify is evidence of
    another place. Places stored without features (added live) keep the similarity decision.

    On any map with 3D points, a 6-DoF pose that at least ``cal.min_inliers`` 2D-3D matches
    agree on, within 2 x radius of a verified candidate, is decisive by itself: the camera is
    where the reconstruction says, whichever view of the structure was retrieved (a facade seen
    from farther away verifies as well as the right view, so such maps are not decisive on
    2D-2D inliers alone)."""
    if len(inliers) == 0 or cal.min_inliers <= 0 or inliers[0] < 0:
        return base
    if pose is not None and pose.inliers >= cal.min_inliers:
        verified = positions[: len(inliers)][inliers >= cal.min_inliers]
        if len(verified) and np.linalg.norm(verified - pose.center, axis=1).min() <= RIVAL_RADII * cal.match_radius_m:
            return _at_pose(pose, max(base.confidence, _verified_confidence(cal, pose.inliers)))
    if not cal.verification_decisive:
        return base
    if inliers[0] < cal.min_inliers:
        return Decision(
            "unknown", None, None, min(base.confidence, AMBIGUOUS_CONFIDENCE * inliers[0] / cal.min_inliers)
        )
    dist = np.linalg.norm(positions[: len(inliers)] - positions[0], axis=1)
    confidence = max(cal.confidence(float(scores[0])), _verified_confidence(cal, int(inliers[0])))
    rivals = (dist > RIVAL_RADII * cal.match_radius_m) & (
        inliers >= max(cal.min_inliers, RIVAL_INLIER_SHARE * inliers[0])
    )
    if pose is not None and np.linalg.norm(pose.center - positions[0]) <= RIVAL_RADII * cal.match_radius_m:
        # a 6-DoF pose from the 3D points pins the position whichever views saw them
        return _at_pose(pose, confidence)
    near = (dist <= cal.match_radius_m) & (inliers >= cal.min_inliers)
    position, spread = weighted_position(inliers[near], positions[: len(inliers)][near])
    uncertainty = float(np.hypot(cal.base_uncertainty_m, spread))
    if rivals.any():
        return Decision(
            "ambiguous", position, max(uncertainty, float(dist[rivals].max())), AMBIGUOUS_CONFIDENCE * confidence
        )
    return Decision("localized", position, uncertainty, float(confidence))


def _verified_confidence(cal: Calibration, inliers: int) -> float:
    """Confidence of an answer verified by ``inliers`` (>= ``cal.min_inliers``) matches: the
    target precision at the calibrated count, rising toward 1 with more."""
    return cal.target_precision + (1 - cal.target_precision) * (1 - cal.min_inliers / float(max(inliers, 1)))


def _at_pose(pose, confidence: float) -> Decision:
    """``localized`` at a 6-DoF pose's camera centre, its uncertainty the pose's 1-sigma radius."""
    return Decision("localized", np.asarray(pose.center, float), max(float(pose.sigma_m), 0.01), float(confidence))
