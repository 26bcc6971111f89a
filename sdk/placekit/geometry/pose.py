"""6-DoF pose from 2D-3D matches: the query keypoints verification matched to keypoints of the
retrieved map places that observe 3D points, then PnP + RANSAC and a Levenberg-Marquardt
refinement (OpenCV).

Shapes: query keypoints (N, 2) pixels; points (P, 3) map-frame metres; K (3, 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

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


def estimate_pose(image_xy: np.ndarray, object_xyz: np.ndarray, K: np.ndarray) -> PoseEstimate | None:
    """Solve PnP + RANSAC (then LM refinement) from 2D-3D correspondences: query keypoints
    (m, 2) pixels and the map points (m, 3) they were matched to (verified matches against the
    retrieved places, ``placekit.local.verification.Verification.correspondences``). None when
    fewer than MIN_INLIERS correspondences agree."""
    if len(image_xy) < MIN_INLIERS:
        return None
    obj = np.asarray(object_xyz, np.float64)
    img = np.asarray(image_xy, np.float64)
    n_matches = len(img)
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
    return PoseEstimate(R, t, center, int(len(inl)), n_matches, _centre_sigma(obj[inl], img[inl], K, rvec, tvec))


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
