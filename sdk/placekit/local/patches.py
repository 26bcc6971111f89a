"""The patch cutter: keypoints (position, scale, orientation) -> square grey patches.

Training and the runtime both call ``cut_patches``, so a descriptor network sees the same
patches in both. A keypoint ``(x, y, size, angle)`` follows OpenCV's ``cv2.KeyPoint``: ``size``
is the diameter of the detected region in pixels, ``angle`` its orientation in degrees
(counter-clockwise in OpenCV's convention, -1 = none). The patch covers a square of side
``extent * size`` centred on the point and rotated to upright, resampled to ``patch_size``
pixels by ``cv2.warpAffine`` (bilinear, replicated borders) with the map of ``patch_affine``.
"""

from __future__ import annotations

import cv2
import numpy as np

from placekit.errors import InvalidImageError

PATCH_SIZE = 32
EXTENT = 7.5  # about the support of SIFT's own descriptor


def patch_affine(keypoint: np.ndarray, patch_size: int = PATCH_SIZE, extent: float = EXTENT) -> np.ndarray:
    """(2, 3) matrix mapping patch pixel (u, v) to image pixel (x, y) for one keypoint
    ``(x, y, size, angle)``; ``cv2.warpAffine(img, M, ..., flags=WARP_INVERSE_MAP)`` cuts it."""
    x, y, size, angle = (float(v) for v in keypoint[:4])
    scale = max(size, 1e-3) * extent / patch_size
    theta = np.radians(angle) if angle >= 0 else 0.0
    c, s = np.cos(theta) * scale, np.sin(theta) * scale
    half = (patch_size - 1) / 2.0
    # rotate by -angle so the keypoint's orientation points along +u (image y grows downward)
    return np.array([[c, s, x - c * half - s * half], [-s, c, y + s * half - c * half]], dtype=np.float64)


def cut_patches(
    gray: np.ndarray, keypoints: np.ndarray, patch_size: int = PATCH_SIZE, extent: float = EXTENT
) -> np.ndarray:
    """(H, W) uint8 grey image, (N, >=4) keypoints ``x, y, size, angle`` -> (N, P, P) uint8.

    One ``cv2.warpAffine`` per keypoint (measured faster than a single batched ``cv2.remap``:
    10 ms vs 17 ms for 1,000 patches from a 1024 px image)."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise InvalidImageError(f"patches are cut from (H, W) uint8 grey images, got {gray.shape} {gray.dtype}")
    kps = np.asarray(keypoints, dtype=np.float64)
    out = np.empty((len(kps), patch_size, patch_size), np.uint8)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for i, kp in enumerate(kps):
        out[i] = cv2.warpAffine(
            gray,
            patch_affine(kp, patch_size, extent),
            (patch_size, patch_size),
            flags=flags,
            borderMode=cv2.BORDER_REPLICATE,
        )
    return out


def keypoints_array(keypoints: list) -> np.ndarray:
    """A list of ``cv2.KeyPoint`` -> (N, 4) float32 ``x, y, size, angle``."""
    return np.array([[k.pt[0], k.pt[1], k.size, k.angle] for k in keypoints], np.float32).reshape(-1, 4)
