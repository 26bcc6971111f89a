"""Descriptor extraction: frames -> global descriptors (GeM), grey patches -> local
descriptors (HardNet), both through an ``Engine``."""

from __future__ import annotations

import cv2
import numpy as np

from placekit.errors import InvalidImageError, ModelFormatError
from placekit.index.quantize import l2_normalize
from placekit.inference.engine import Engine
from placekit.inference.imageio import Frame, to_bgr
from placekit.inference.preprocess import preprocess


def _require_kind(engine: Engine, kind: str) -> None:
    if engine.info.kind != kind:
        raise ModelFormatError(f"model {engine.info.name!r} is a {engine.info.kind} model; need a {kind} one")


class GlobalExtractor:
    """Wraps a ``global`` model engine. ``describe`` is thread-safe when the engine is."""

    def __init__(self, engine: Engine):
        _require_kind(engine, "global")
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
        _require_kind(engine, "local")
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


NMS_WINDOW = 5  # a keypoint is the most probable pixel of its 5 x 5 neighbourhood
MIN_KEYPOINT_PROBABILITY = 0.05  # below this a pixel is not a keypoint candidate


class DenseDescriber:
    """Wraps a ``dense`` model engine (e.g. XFeat): a grey image -> keypoints and descriptors in
    one network call. The model returns one (1, D + 1 + c * c, H/c, W/c) tensor for a cell size
    c: D descriptor channels (unit norm), a reliability channel, and the keypoint probabilities
    of the c x c pixels of each cell, row-major (``placekit_export.xfeat``)."""

    def __init__(self, engine: Engine):
        _require_kind(engine, "dense")
        self.engine = engine
        self.info = engine.info

    @property
    def dim(self) -> int:
        return self.info.output_dim

    @property
    def size_multiple(self) -> int:
        return self.info.size_multiple

    def describe_image(self, gray: np.ndarray, max_keypoints: int) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) uint8 grey, H and W multiples of ``size_multiple`` -> (keypoints (N, 2) x, y in
        its pixels, descriptors (N, D) float32 unit-norm), N <= max_keypoints, the most probable
        and reliable first."""
        h, w = gray.shape
        out = np.asarray(self.engine.run(np.ascontiguousarray(gray, np.float32)[None, None]), np.float32)
        d = self.dim
        if out.ndim != 4 or out.shape[1] <= d + 1:
            raise ModelFormatError(f"dense model {self.info.name!r} returned shape {out.shape}")
        cells = out[0, d + 1 :]
        cell = int(round(np.sqrt(cells.shape[0])))
        gh, gw = out.shape[2:]
        if cell * cell != cells.shape[0] or (gh * cell, gw * cell) != (h, w):
            raise ModelFormatError(f"dense model {self.info.name!r}: output {out.shape} does not tile a {h}x{w} image")
        heat = cells.reshape(cell, cell, gh, gw).transpose(2, 0, 3, 1).reshape(h, w)
        peak = cv2.dilate(heat, np.ones((NMS_WINDOW, NMS_WINDOW), np.uint8))
        ys, xs = np.nonzero((heat >= peak) & (heat > MIN_KEYPOINT_PROBABILITY))
        score = heat[ys, xs] * _sample_grid(out[0, d : d + 1], xs, ys, h, w)[0]
        best = np.argsort(-score, kind="stable")[:max_keypoints]
        xs, ys = xs[best], ys[best]
        descriptors = l2_normalize(_sample_grid(out[0, :d], xs, ys, h, w).T)
        dx, dy = _subpixel_offsets(heat, xs, ys)
        xy = np.stack([np.clip(xs + dx, 0, w - 1), np.clip(ys + dy, 0, h - 1)], axis=1).astype(np.float32)
        return xy, np.ascontiguousarray(descriptors, np.float32)


def _subpixel_offsets(heat: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel offsets (each in -1..1) of peaks (xs, ys) (N,) of ``heat`` (H, W): the
    probability-weighted centroid of each peak's 3 x 3 neighbourhood (clamped at the borders)."""
    h, w = heat.shape
    offsets = np.array([-1, 0, 1])
    nx = np.clip(xs[:, None, None] + offsets[None, None, :], 0, w - 1)  # (N, 1, 3)
    ny = np.clip(ys[:, None, None] + offsets[None, :, None], 0, h - 1)  # (N, 3, 1)
    patch = heat[ny, nx]  # (N, 3, 3)
    mass = np.maximum(patch.sum(axis=(1, 2)), 1e-12)
    dx = (patch * offsets[None, None, :]).sum(axis=(1, 2)) / mass
    dy = (patch * offsets[None, :, None]).sum(axis=(1, 2)) / mass
    return dx.astype(np.float32), dy.astype(np.float32)


def _sample_grid(grid: np.ndarray, xs: np.ndarray, ys: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear samples of a (C, gh, gw) grid covering an h x w image at pixels (xs, ys) (N,):
    (C, N). Pixel x maps to grid column x / (w - 1) * gw - 0.5 (the convention the model was
    trained with), clamped to the grid."""
    _, gh, gw = grid.shape
    u = np.clip(xs / max(w - 1, 1) * gw - 0.5, 0, gw - 1)
    v = np.clip(ys / max(h - 1, 1) * gh - 0.5, 0, gh - 1)
    u0, v0 = (
        np.minimum(u.astype(np.int64), gw - 2 if gw > 1 else 0),
        np.minimum(v.astype(np.int64), gh - 2 if gh > 1 else 0),
    )
    u1, v1 = np.minimum(u0 + 1, gw - 1), np.minimum(v0 + 1, gh - 1)
    fu, fv = (u - u0).astype(np.float32), (v - v0).astype(np.float32)
    return (
        grid[:, v0, u0] * (1 - fu) * (1 - fv)
        + grid[:, v0, u1] * fu * (1 - fv)
        + grid[:, v1, u0] * (1 - fu) * fv
        + grid[:, v1, u1] * fu * fv
    )
