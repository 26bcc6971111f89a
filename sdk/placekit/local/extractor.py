"""Local features: keypoints (position, scale, orientation) -> patches
(``placekit.local.patches.cut_patches``, the cutter training uses) -> descriptors (a ``local`` model,
e.g. HardNet, through an ``Engine``; or OpenCV's own RootSIFT as a model-free fallback).

Keypoint detectors (``detector``):

* ``sift``: OpenCV's SIFT (difference of Gaussians), the strongest responses. What HardNet was
  trained on, and what maps written before the detector was a setting use. 40-65 ms for a
  640 x 480 frame on 2 cores.
* ``dense``: a dense model (``DenseDescriber``, e.g. XFeat) finds keypoints and describes them
  in one network call over the whole image; no patches.
* ``orb``: OpenCV's ORB detector (FAST corners on an image pyramid, Harris-ranked, intensity
  centroid orientation), 5 ms for the same frame, spread over the image on a grid so that no
  texture-rich corner takes every keypoint. Its keypoint size (the 31-pixel ORB patch scaled to
  the pyramid level) is divided by ``ORB_SIZE_PER_PATCH_SIZE`` so that the patch cut around a
  keypoint covers about the region the detector looked at.

Images are described at ``max_side`` pixels (long side) at most; keypoint coordinates are
returned in the pixels of the image given. ``LocalFeatures`` shapes: ``keypoints`` (N, 4)
float32 ``x, y, size, angle``; ``descriptors`` (N, D) float32 unit-norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from placekit.errors import InvalidImageError, OptionsError
from placekit.inference.extractors import DenseDescriber, LocalDescriber
from placekit.local.matching import root_sift
from placekit.local.patches import keypoints_array
from placekit.options import DEFAULT_LOCAL_MAX_SIDE, DEFAULT_MAX_KEYPOINTS

DETECTORS = ("sift", "orb", "dense")
ORB_CANDIDATES_PER_KEYPOINT = 4  # ORB finds this many candidates per keypoint kept, for the grid to choose from
ORB_FAST_THRESHOLD = 10  # FAST intensity threshold: low, so that weak texture still yields corners
ORB_SIZE_PER_PATCH_SIZE = 5.0  # ORB size / 5 = a SIFT-like size; the patch spans EXTENT (7.5) x that
GRID_CELLS = (8, 6)  # keypoints are spread over an 8 x 6 grid of the image
DENSE_CELL_PX = 8.0  # keypoint "size" reported for a dense model: its descriptor cell
SUBPIXEL_WINDOW = (4, 4)  # half-size of cv2.cornerSubPix's search window
SUBPIXEL_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 20, 0.03)


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
    """Keypoints of ``detector`` + a patch descriptor (``describer``: a ``LocalDescriber``), a
    dense model that is its own detector (a ``DenseDescriber``), or RootSIFT on SIFT keypoints
    (``describer=None``). At most ``max_keypoints`` are kept. Thread-safe (a detector per call)."""

    def __init__(
        self,
        describer: LocalDescriber | DenseDescriber | None = None,
        max_keypoints: int = DEFAULT_MAX_KEYPOINTS,
        max_side: int = DEFAULT_LOCAL_MAX_SIDE,
        detector: str = "sift",
    ):
        if detector not in DETECTORS:
            raise OptionsError(f"detector must be one of {DETECTORS}, got {detector!r}")
        self.describer = describer
        self.max_keypoints = int(max_keypoints)
        self.max_side = int(max_side)
        # RootSIFT describes with SIFT's own descriptor, which needs SIFT's keypoints; a dense
        # model is its own detector
        if isinstance(describer, DenseDescriber):
            detector = "dense"
        elif describer is None:
            detector = "sift"
        elif detector == "dense":
            raise OptionsError("the 'dense' detector needs a dense model")
        self.detector = detector

    def with_max_keypoints(self, max_keypoints: int) -> LocalFeatureExtractor:
        """The same extractor keeping at most ``max_keypoints`` per image (e.g. fewer for queries
        than the map stores)."""
        return LocalFeatureExtractor(self.describer, max_keypoints, self.max_side, self.detector)

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
        if isinstance(self.describer, DenseDescriber):
            return self._extract_dense(gray)
        h, w = gray.shape
        scale = min(1.0, self.max_side / max(h, w))
        small = (
            cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
            if scale < 1
            else gray
        )
        if self.describer is None:
            sift = cv2.SIFT_create(nfeatures=self.max_keypoints)  # type: ignore[attr-defined]
            kps, desc = sift.detectAndCompute(small, None)
            desc = root_sift(desc) if desc is not None and len(desc) else np.zeros((0, 128), np.float32)
            k = keypoints_array(kps)
        else:
            k = self._detect(small)
            desc = self.describer.describe_keypoints(small, k) if len(k) else np.zeros((0, self.dim), np.float32)
        k[:, :3] /= scale
        return LocalFeatures(k, np.asarray(desc, np.float32), (w, h))

    def _extract_dense(self, gray: np.ndarray) -> LocalFeatures:
        """A dense model on the image at <= max_side, its sides rounded down to the model's
        multiple; keypoints back in the input's pixels, size one descriptor cell, no angle."""
        assert isinstance(self.describer, DenseDescriber)
        h, w = gray.shape
        m = self.describer.size_multiple
        scale = min(1.0, self.max_side / max(h, w))
        th, tw = int(h * scale) // m * m, int(w * scale) // m * m
        if th < m or tw < m:
            return LocalFeatures(np.zeros((0, 4), np.float32), np.zeros((0, self.dim), np.float32), (w, h))
        small = cv2.resize(gray, (tw, th), interpolation=cv2.INTER_AREA) if (th, tw) != (h, w) else gray
        xy, desc = self.describer.describe_image(small, self.max_keypoints)
        sx, sy = w / tw, h / th
        k = np.zeros((len(xy), 4), np.float32)
        k[:, 0], k[:, 1], k[:, 2], k[:, 3] = xy[:, 0] * sx, xy[:, 1] * sy, DENSE_CELL_PX * sx, -1.0
        return LocalFeatures(k, desc, (w, h))

    def _detect(self, small: np.ndarray) -> np.ndarray:
        """(N, 4) keypoints ``x, y, size, angle`` of the (resized) image, N <= max_keypoints."""
        if self.detector == "sift":
            kps = cv2.SIFT_create(nfeatures=self.max_keypoints).detect(small, None)  # type: ignore[attr-defined]
            return keypoints_array(sorted(kps, key=lambda k: -k.response)[: self.max_keypoints])
        orb = cv2.ORB_create(  # type: ignore[attr-defined]
            nfeatures=ORB_CANDIDATES_PER_KEYPOINT * self.max_keypoints, fastThreshold=ORB_FAST_THRESHOLD
        )
        kps = orb.detect(small, None)
        k = keypoints_array(kps)
        response = np.array([kp.response for kp in kps], np.float32)
        k = k[spread_over_grid(k[:, :2], response, small.shape, self.max_keypoints)]
        k[:, 2] /= ORB_SIZE_PER_PATCH_SIZE
        if len(k) >= 2:  # FAST corners sit on their pyramid level's pixel grid: refine them to sub-pixel
            corners = np.ascontiguousarray(k[:, None, :2])
            try:
                k[:, :2] = cv2.cornerSubPix(small, corners, SUBPIXEL_WINDOW, (-1, -1), SUBPIXEL_CRITERIA)[:, 0]
            except cv2.error:
                pass  # keep the pixel positions (OpenCV refuses some degenerate inputs)
        return k


def spread_over_grid(xy: np.ndarray, response: np.ndarray, shape: tuple[int, ...], n: int) -> np.ndarray:
    """Indices of at most ``n`` points (xy (N, 2) in an image of ``shape`` (H, W)), taken from
    the cells of a ``GRID_CELLS`` grid in turn, the strongest ``response`` (N,) of each cell
    first: (k,) int64, strongest rounds first."""
    if len(xy) <= n:
        return np.argsort(-response, kind="stable")
    h, w = shape[:2]
    cx = np.minimum((xy[:, 0] * GRID_CELLS[0] / max(w, 1)).astype(np.int64), GRID_CELLS[0] - 1)
    cy = np.minimum((xy[:, 1] * GRID_CELLS[1] / max(h, 1)).astype(np.int64), GRID_CELLS[1] - 1)
    cell = cy * GRID_CELLS[0] + cx
    order = np.lexsort((-response, cell))  # by cell, strongest first within a cell
    sorted_cells = cell[order]
    first = np.searchsorted(sorted_cells, sorted_cells, side="left")
    rank = np.arange(len(order)) - first  # 0 for a cell's strongest point, 1 for the next, ...
    picked = order[np.lexsort((-response[order], rank))][:n]
    return picked.astype(np.int64)
