"""Two-view matching: local descriptors -> tentative matches -> geometrically verified inliers.

Shapes: keypoint positions ``xy`` (N, 2) float32 pixels; descriptors (N, D) float32 unit-norm;
matches (M, 2) int64 rows into (first image, second image).
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_RATIO = 0.9
MIN_MATCHES_FOR_MODEL = 8


def mutual_matches(desc1: np.ndarray, desc2: np.ndarray, ratio: float = DEFAULT_RATIO) -> np.ndarray:
    """Mutual nearest neighbours (L2) that also pass Lowe's ratio test in the 1 -> 2 direction.

    |a - b|^2 = |a|^2 + |b|^2 - 2 a.b, so a row's nearest column maximises 2 a.b - |b|^2: two
    matrix products (one per direction, so every reduction runs along contiguous rows)."""
    if len(desc1) < 2 or len(desc2) < 2:
        return np.zeros((0, 2), np.int64)
    a, b = np.asarray(desc1, np.float32), np.asarray(desc2, np.float32)
    na, nb = (a * a).sum(1), (b * b).sum(1)
    score = a @ b.T  # (N1, N2), then in place:
    score *= 2.0
    score -= nb[None, :]  # larger = nearer
    rows = np.arange(len(a))
    best = np.argmax(score, axis=1)
    s1 = score[rows, best]
    score[rows, best] = -np.inf
    s2 = score.max(axis=1)
    score_t = b @ a.T
    score_t *= 2.0
    score_t -= na[None, :]
    back = np.argmax(score_t, axis=1)  # (N2,): nearest row of each column
    d1 = np.sqrt(np.maximum(na - s1, 0.0))
    d2 = np.sqrt(np.maximum(na - s2, 0.0))
    ok = (d1 < ratio * d2) & (back[best] == rows)
    return np.stack([rows[ok], best[ok]], axis=1).astype(np.int64)


def verified_inliers(
    xy1: np.ndarray,
    xy2: np.ndarray,
    matches: np.ndarray,
    model: str = "fundamental",
    threshold_px: float = 3.0,
    confidence: float = 0.999,
) -> np.ndarray:
    """(M,) bool inlier mask of ``matches`` under one epipolar geometry (``fundamental``) or
    one plane (``homography``), fitted by OpenCV's USAC (MAGSAC++). All False when too few or
    degenerate."""
    inliers = np.zeros(len(matches), bool)
    if len(matches) < MIN_MATCHES_FOR_MODEL:
        return inliers
    p1 = np.ascontiguousarray(xy1[matches[:, 0]], np.float32)
    p2 = np.ascontiguousarray(xy2[matches[:, 1]], np.float32)
    if model not in ("fundamental", "homography"):
        raise ValueError(f"model must be 'fundamental' or 'homography', got {model!r}")
    try:
        if model == "fundamental":
            _, mask = cv2.findFundamentalMat(p1, p2, cv2.USAC_MAGSAC, threshold_px, confidence, 2000)
        else:
            _, mask = cv2.findHomography(p1, p2, cv2.USAC_MAGSAC, threshold_px, confidence=confidence, maxIters=2000)
    except cv2.error:
        # degenerate matches (all identical, collinear, a handful of pixels: USAC finds no model
        # and asserts) verify nothing
        return inliers
    if mask is not None:
        inliers = mask.ravel().astype(bool)
    return inliers


def sift_features(gray: np.ndarray, max_keypoints: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV SIFT on a (H, W) uint8 image -> (xy (N, 2), RootSIFT descriptors (N, 128))."""
    sift = cv2.SIFT_create(nfeatures=max_keypoints)  # type: ignore[attr-defined]
    keypoints, desc = sift.detectAndCompute(gray, None)
    if desc is None or len(keypoints) == 0:  # OpenCV < 5 returns None, 5.x an empty array
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
    xy = np.array([k.pt for k in keypoints], np.float32)
    return xy, root_sift(desc)


def root_sift(desc: np.ndarray) -> np.ndarray:
    """SIFT -> RootSIFT (Arandjelovic & Zisserman): L1-normalise, square root; unit L2 norm."""
    d = np.asarray(desc, np.float32)
    d = d / np.maximum(np.abs(d).sum(1, keepdims=True), 1e-12)
    return np.sqrt(d)
