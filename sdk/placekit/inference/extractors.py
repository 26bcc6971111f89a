"""Descriptor extraction: frames -> global descriptors (GeM), grey patches -> local
descriptors (HardNet), both through an ``Engine``."""

from __future__ import annotations

import numpy as np

from placekit.errors import InvalidImageError, ModelFormatError
from placekit.index.quantize import l2_normalize
from placekit.inference.engine import Engine
from placekit.inference.imageio import Frame, to_bgr
from placekit.inference.preprocess import preprocess


class GlobalExtractor:
    """Wraps a ``global`` model engine. ``describe`` is thread-safe when the engine is."""

    def __init__(self, engine: Engine):
        if engine.info.kind != "global":
            raise ModelFormatError(f"model {engine.info.name!r} is a {engine.info.kind} model; need a global one")
        self.engine = engine
        self.info = engine.info

    @property
    def dim(self) -> int:
        return self.info.output_dim

    def describe_bgr(self, bgr: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 BGR -> (D,) float32 unit-norm descriptor."""
        out = self.engine.run(preprocess(bgr, self.info))
        out = np.asarray(out, np.float32).reshape(1, -1)
        if out.shape[1] != self.dim:
            raise ModelFormatError(
                f"model {self.info.name!r} returned {out.shape[1]} values; its metadata says {self.dim}"
            )
        if not np.isfinite(out).all():
            raise ModelFormatError(f"model {self.info.name!r} returned non-finite values")
        return l2_normalize(out)[0]

    def describe(self, frame: Frame) -> np.ndarray:
        """Any accepted frame (array or path) -> (D,) float32 unit-norm descriptor."""
        return self.describe_bgr(to_bgr(frame))


class LocalDescriber:
    """Wraps a ``local`` (patch) model engine: grey patches -> (N, D) unit descriptors.

    Patches go through the engine in batches of ``batch``, or of the engine's fixed batch when
    it has one (converted TFLite models do), the last one padded; ``describe_keypoints`` cuts them
    with the runtime's patch cutter at the extent the model was trained with."""

    def __init__(self, engine: Engine, batch: int = 512):
        if engine.info.kind != "local":
            raise ModelFormatError(f"model {engine.info.name!r} is a {engine.info.kind} model; need a local one")
        if engine.info.fixed_size is None:
            raise ModelFormatError(f"local model {engine.info.name!r} lacks its patch size (placekit.fixed_size)")
        self.engine = engine
        self.info = engine.info
        self.batch = int(batch)

    @property
    def dim(self) -> int:
        return self.info.output_dim

    def _patch_size(self) -> tuple[int, int]:
        size = self.info.fixed_size
        if size is None:
            raise ModelFormatError(f"local model {self.info.name!r} declares no fixed patch size")
        return size

    def describe_patches(self, patches: np.ndarray) -> np.ndarray:
        """(N, P, P) uint8 -> (N, D) float32 unit-norm descriptors."""
        patches = np.asarray(patches)
        size = self._patch_size()
        if patches.ndim != 3 or patches.shape[1:] != size or patches.dtype != np.uint8:
            raise InvalidImageError(
                f"patches must be (N, {size[0]}, {size[1]}) uint8, got {patches.shape} {patches.dtype}"
            )
        n = len(patches)
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        x = (patches.astype(np.float32) - self.info.mean[0]) * (1.0 / self.info.std[0])
        x = x[:, None] if self.info.layout == "NCHW" else x[..., None]
        batch = self.engine.fixed_batch or min(self.batch, n)
        pad = (-n) % batch
        if pad:
            x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
        out = np.concatenate(
            [
                np.asarray(self.engine.run(np.ascontiguousarray(x[s : s + batch])), np.float32)
                for s in range(0, len(x), batch)
            ]
        )[:n]
        if out.shape[1] != self.dim:
            raise ModelFormatError(
                f"model {self.info.name!r} returned {out.shape[1]} values; its metadata says {self.dim}"
            )
        return l2_normalize(out)

    def describe_keypoints(self, gray: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """(H, W) uint8 grey image + (N, 4) keypoints ``x, y, size, angle`` -> (N, D)."""
        from placekit.local.patches import EXTENT, cut_patches

        extent = self.info.patch_extent or EXTENT
        return self.describe_patches(cut_patches(gray, keypoints, self._patch_size()[0], extent))
