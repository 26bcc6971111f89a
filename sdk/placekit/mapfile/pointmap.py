"""The local-feature part of a map: per place, keypoints with int8 descriptors, and, for maps
built from posed images, the 3D points they observe.

Map members (all present or none; ``manifest["local"]`` describes them; the format and its
versions: ``docs/map-format.md``):

* ``local/place_ids.npy`` (N,) int64 sorted: places that have features
* ``local/offsets.npy`` (N + 1,) int64: place i owns feature rows offsets[i]:offsets[i+1]
* ``local/keypoints.npy`` (M, 4) float32: x, y, size, angle in the place image's pixels
* ``local/descriptors.npy`` (M, D) int8: round(descriptor * scale), clipped to +-127
* ``local/point_ids.npy`` (M,) int32: the 3D point a keypoint observes, -1 for none
* ``local/points.npy`` (P, 3) float32: 3D points in the map frame (metres)

A point's visibility is the set of keypoint rows that name it. Manifest section: ``extractor``
(local model name or ``rootsift``), ``model_sha256``, ``dim``, ``scale``, ``max_keypoints``,
``max_side``, ``points``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from placekit.errors import MapFormatError

DESCRIPTOR_SCALE = 400.0  # unit 128-D descriptors have components well inside +-0.3


def quantize_descriptors(d: np.ndarray, scale: float = DESCRIPTOR_SCALE) -> np.ndarray:
    """(n, D) unit-norm float descriptors -> (n, D) int8, as the map stores them."""
    return np.clip(np.rint(np.asarray(d, np.float32) * scale), -127, 127).astype(np.int8)


def dequantize_descriptors(q: np.ndarray) -> np.ndarray:
    """(n, D) stored int8 descriptors -> (n, D) float32, unit-norm rows."""
    d = np.asarray(q, np.float32)
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class PointMap:
    section: dict
    place_ids: np.ndarray
    offsets: np.ndarray
    keypoints: np.ndarray
    descriptors: np.ndarray
    point_ids: np.ndarray
    points: np.ndarray

    @classmethod
    def create(
        cls, section: dict, features: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]], points: np.ndarray
    ) -> PointMap:
        """features: place id -> (keypoints (n, 4), float descriptors (n, D), point ids (n,))."""
        ids = np.array(sorted(features), np.int64)
        counts = [len(features[i][0]) for i in ids]
        offsets = np.zeros(len(ids) + 1, np.int64)
        offsets[1:] = np.cumsum(counts)
        dim = int(section["dim"])

        def cat(j: int, shape: tuple[int, ...], dtype: type) -> np.ndarray:
            """Part ``j`` of every place's features, concatenated in id order."""
            if not len(ids):
                return np.zeros((0,) + shape[1:], dtype)
            return np.concatenate([np.asarray(features[i][j], dtype).reshape(shape) for i in ids])

        return cls(
            dict(section, scale=DESCRIPTOR_SCALE, points=int(len(points))),
            ids,
            offsets,
            cat(0, (-1, 4), np.float32),
            quantize_descriptors(cat(1, (-1, dim), np.float32)),
            cat(2, (-1,), np.int32),
            np.asarray(points, np.float32).reshape(-1, 3),
        )

    def features_of(self, place_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(keypoints (n, 4), descriptors (n, D) float32 unit-norm, point ids (n,)); empty
        when the place has no features (e.g. added live)."""
        k = int(np.searchsorted(self.place_ids, place_id))
        if k >= len(self.place_ids) or self.place_ids[k] != place_id:
            dim = self.descriptors.shape[1]
            return np.zeros((0, 4), np.float32), np.zeros((0, dim), np.float32), np.zeros(0, np.int32)
        a, b = int(self.offsets[k]), int(self.offsets[k + 1])
        d = dequantize_descriptors(self.descriptors[a:b])
        return np.asarray(self.keypoints[a:b]), d, np.asarray(self.point_ids[a:b])

    @property
    def has_points(self) -> bool:
        return len(self.points) > 0

    def bytes(self) -> int:
        return sum(
            int(np.asarray(a).nbytes)
            for a in (self.place_ids, self.offsets, self.keypoints, self.descriptors, self.point_ids, self.points)
        )

    def to_members(self) -> tuple[dict, dict[str, np.ndarray]]:
        return dict(self.section), {
            "local/place_ids.npy": self.place_ids,
            "local/offsets.npy": self.offsets,
            "local/keypoints.npy": self.keypoints,
            "local/descriptors.npy": self.descriptors,
            "local/point_ids.npy": self.point_ids,
            "local/points.npy": self.points,
        }

    @classmethod
    def from_members(cls, section: dict, arrays: dict, source: str) -> PointMap:
        try:
            pm = cls(
                dict(section),
                arrays["local/place_ids.npy"],
                arrays["local/offsets.npy"],
                arrays["local/keypoints.npy"],
                arrays["local/descriptors.npy"],
                arrays["local/point_ids.npy"],
                arrays["local/points.npy"],
            )
        except KeyError as exc:
            raise MapFormatError(f"{source}: local-feature member {exc} missing") from None
        n, m = len(pm.place_ids), len(pm.keypoints)
        ok = (
            pm.offsets.shape == (n + 1,)
            and (n == 0 or (pm.offsets[0] == 0 and pm.offsets[-1] == m and np.all(np.diff(pm.offsets) >= 0)))
            and pm.keypoints.shape == (m, 4)
            and pm.descriptors.shape == (m, int(section["dim"]))
            and pm.descriptors.dtype == np.int8
            and pm.point_ids.shape == (m,)
            and pm.points.ndim == 2
            and pm.points.shape[1] == 3
            and (m == 0 or (int(pm.point_ids.min()) >= -1 and int(pm.point_ids.max()) < len(pm.points)))
            and np.all(np.diff(pm.place_ids) > 0)
        )
        if not ok:
            raise MapFormatError(f"{source}: the local-feature members are inconsistent")
        return pm
