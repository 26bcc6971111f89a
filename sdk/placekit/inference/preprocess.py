"""Resize and normalise a BGR frame into a model's input tensor, as its metadata says."""

from __future__ import annotations

import cv2
import numpy as np

from placekit.inference.modelinfo import ModelInfo


def target_size(height: int, width: int, info: ModelInfo) -> tuple[int, int]:
    """(H, W) the model sees: fixed, or long side = ``input_size`` rounded to ``size_multiple``."""
    if info.fixed_size is not None:
        return info.fixed_size
    scale = info.input_size / max(height, width)
    m = info.size_multiple
    h = max(m, int(round(height * scale / m)) * m)
    w = max(m, int(round(width * scale / m)) * m)
    return h, w


def preprocess(bgr: np.ndarray, info: ModelInfo) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> (1, C, h, w) or (1, h, w, C) float32, normalised."""
    h, w = target_size(bgr.shape[0], bgr.shape[1], info)
    shrinking = h * w < bgr.shape[0] * bgr.shape[1]
    image = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if info.color == "RGB":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif info.color == "GRAY":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]
    x = image.astype(np.float32)
    x -= np.asarray(info.mean, np.float32)
    x *= np.asarray([1.0 / s for s in info.std], np.float32)
    if info.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None])
