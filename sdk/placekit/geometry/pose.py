"""6-DoF pose from 2D-3D matches: query keypoints matched to the 3D points seen by the
retrieved map places, then PnP + RANSAC and a Levenberg-Marquardt refinement (OpenCV).

Shapes: query keypoints (N, 2) pixels; points (P, 3) map-frame metres; K (3, 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from placekit.local.matching import DEFAULT_RATIO, mutual_matches

MIN_INLIERS = 12
REPROJECTION_PX = 4.0


@dataclass(frozen=True)
class PoseEstimate:
    R: np.ndarray  # (3, 3) world-to-camera
    t: np.ndarray  # (3,)
    center: np.ndarray  # (3,) camera centre in the map frame
    inliers: int
    matches: int
    sigma_m: float  # 1-sigma radius of the centre, from the inliers' reprojection residuals


def camera_matrix(
    shape: tuple[int, ...], map_intrinsics: np.ndarray, given: tuple[float, float, float, float] | None = None
) -> np.ndarray | None:
    """K (3, 3) of a query frame of ``shape`` (H, W[, C]): from ``given`` (fx, fy, cx, cy) in the
    frame's pixels, else the map camera's intrinsics (4,) scaled to the frame's width with the
    principal point at its centre; None when neither is known."""
    if given is not None:
        fx, fy, cx, cy = given
    else:
        if not np.isfinite(map_intrinsics).all():
            return None
        fx, fy, cx, cy = (float(v) for v in map_intrinsics)
        scale = shape[1] / (2.0 * cx)
        fx, fy, cx, cy = fx * scale, fy * scale, shape[1] / 2.0, shape[0] / 2.0
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], float)


def estimate_pose(
    query_xy: np.ndarray,
    query_desc: np.ndarray,
    map_desc: np.ndarray,
    map_point_ids: np.ndarray,
    points: np.ndarray,
    K: np.ndarray,
    ratio: float = DEFAULT_RATIO,
) -> PoseEstimate | None:
    """Match query descriptors to map keypoints that observe 3D points; solve PnP. None when
    fewer than MIN_INLIERS correspondences survive."""
    has_point = map_point_ids >= 0
    if has_point.sum() < MIN_INLIERS or len(query_desc) < MIN_INLIERS:
        return None
    m = mutual_matches(query_desc, map_desc[has_point], ratio)
    if len(m) < MIN_INLIERS:
        return None
    obj = points[map_point_ids[has_point][m[:, 1]]].astype(np.float64)
    img = query_xy[m[:, 0]].astype(np.float64)
    try:
        ok, rvec, tvec, inl = cv2.solvePnPRansac(
            obj,
            img,
            K,
            None,
            iterationsCount=2000,
            reprojectionError=REPROJECTION_PX,
            confidence=0.999,
            flags=cv2.SOLVEPNP_EPNP,
        )
        if not ok or inl is None or len(inl) < MIN_INLIERS:
            return None
        inl = inl.ravel()
        rvec, tvec = cv2.solvePnPRefineLM(obj[inl], img[inl], K, None, rvec, tvec)
    except cv2.error:
        return None  # degenerate correspondences (coplanar, collinear, repeated)
    R = cv2.Rodrigues(rvec)[0]
    t = tvec.ravel()
    center = -R.T @ t
    return PoseEstimate(R, t, center, int(len(inl)), int(len(m)), _centre_sigma(obj[inl], img[inl], K, rvec, tvec))


def _centre_sigma(obj, img, K, rvec, tvec) -> float:
    """First-order 1-sigma radius of the camera centre: (J^T J)^-1 s^2 of the reprojection
    residuals, propagated to C = -R^T t numerically."""
    proj, J = cv2.projectPoints(obj, rvec, tvec, K, None)
    resid = (proj.reshape(-1, 2) - img).ravel()
    dof = max(len(resid) - 6, 1)
    s2 = float(resid @ resid) / dof
    J = J[:, :6]
    try:
        cov = np.linalg.inv(J.T @ J) * s2
    except np.linalg.LinAlgError:
        return float("inf")

    def centre(p):
        R = cv2.Rodrigues(p[:3])[0]
        return -R.T @ p[3:]

    p0 = np.concatenate([rvec.ravel(), tvec.ravel()])
    G = np.zeros((3, 6))
    for k in range(6):
        d = np.zeros(6)
        d[k] = 1e-6
        G[:, k] = (centre(p0 + d) - centre(p0 - d)) / 2e-6
    return float(np.sqrt(max(np.trace(G @ cov @ G.T), 0.0)))
