"""Local features: keypoints (OpenCV SIFT detector: position, scale, orientation) -> patches
(``placekit.local.patches.cut_patches``, the cutter training uses) -> descriptors (a ``local`` model,
e.g. HardNet, through an ``Engine``; or OpenCV's own RootSIFT as a model-free fallback).

Images are described at ``max_side`` pixels (long side) at most; keypoint coordinates are
returned in the pixels of the image given. ``LocalFeatures`` shapes: ``keypoints`` (N, 4)
float32 ``x, y, size, angle``; ``descriptors`` (N, D) float32 unit-norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from placekit.errors import InvalidImageError
from placekit.inference.extractors import LocalDescriber
from placekit.local.matching import root_sift
from placekit.local.patches import keypoints_array

DEFAULT_MAX_KEYPOINTS = 1024
DEFAULT_MAX_SIDE = 640
MIN_CONTRAST = 0.04 / 3  # cv2.SIFT's default contrastThreshold over its 3 octave layers


@dataclass(frozen=True)
class LocalFeatures:
    keypoints: np.ndarray  # (N, 4) float32: x, y, size, angle (pixels of the input image)
    descriptors: np.ndarray  # (N, D) float32, unit norm
    image_size: tuple[int, int]  # (width, height) of the input image

    @property
    def xy(self) -> np.ndarray:
        return self.keypoints[:, :2]

    def __len__(self) -> int:
        return len(self.keypoints)


class LocalFeatureExtractor:
    """SIFT keypoints + a patch descriptor (``describer``) or RootSIFT (``describer=None``).

    The strongest ``max_keypoints`` responses are kept. Thread-safe (a detector per call)."""

    def __init__(
        self,
        describer: LocalDescriber | None = None,
        max_keypoints: int = DEFAULT_MAX_KEYPOINTS,
        max_side: int = DEFAULT_MAX_SIDE,
    ):
        self.describer = describer
        self.max_keypoints = int(max_keypoints)
        self.max_side = int(max_side)

    @property
    def name(self) -> str:
        return self.describer.info.name if self.describer is not None else "rootsift"

    @property
    def dim(self) -> int:
        return self.describer.dim if self.describer is not None else 128

    def extract(self, gray: np.ndarray) -> LocalFeatures:
        """(H, W) uint8 grey image -> LocalFeatures (possibly empty: blank or tiny images)."""
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise InvalidImageError(f"local features need an (H, W) uint8 grey image, got {gray.shape} {gray.dtype}")
        h, w = gray.shape
        scale = min(1.0, self.max_side / max(h, w))
        small = (
            cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
            if scale < 1
            else gray
        )
        sift = cv2.SIFT_create(nfeatures=self.max_keypoints)  # type: ignore[attr-defined]
        if self.describer is None:
            kps, desc = sift.detectAndCompute(small, None)
            desc = root_sift(desc) if desc is not None else np.zeros((0, 128), np.float32)
        else:
            kps = sift.detect(small, None)
            kps = sorted(kps, key=lambda k: -k.response)[: self.max_keypoints]
            desc = None
        k = keypoints_array(kps)
        if self.describer is not None:
            desc = self.describer.describe_keypoints(small, k) if len(k) else np.zeros((0, self.dim), np.float32)
        k[:, :3] /= scale
        return LocalFeatures(k, np.asarray(desc, np.float32), (w, h))
