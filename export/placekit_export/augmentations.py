"""Training augmentations for GeM: what a second visit to a place looks like.

* ``augment``: every training image. A crop, a small rotation, light and colour changes, sometimes
  a mild blur.
* ``adverse_conditions``: some training images (``GemTrainConfig.adverse_prob``). The capture
  failures a robot camera meets (a low-resolution or defocused frame, a dark exposure with sensor
  noise, a lens partly covered). Each failure is drawn independently, at a random severity.

The held-out ``*-dusk`` sets (``retrieval_eval.dusk_lens``) stack every failure at one fixed
severity on unseen images. Training never sees those images or that exact combination.
"""

from __future__ import annotations

import cv2
import numpy as np

TRAIN_HW = (256, 320)  # augmented crops (H, W)


def augment(rgb: np.ndarray, rng: np.random.Generator, out_hw: tuple[int, int] = TRAIN_HW) -> np.ndarray:
    """A crop (scale 0.5-1 of the area, landscape), a rotation up to 10 degrees, brightness,
    contrast, saturation and blur changes: what a second visit to a place looks like."""
    h, w = rgb.shape[:2]
    aspect = out_hw[1] / out_hw[0]
    area = rng.uniform(0.5, 1.0) * h * w
    cw = int(min(w, np.sqrt(area * aspect)))
    ch = int(min(h, cw / aspect))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    rot = cv2.getRotationMatrix2D((x0 + cw / 2, y0 + ch / 2), rng.uniform(-10, 10), 1.0)
    rot[:, 2] -= (x0, y0)
    crop = cv2.warpAffine(rgb, rot, (cw, ch), borderMode=cv2.BORDER_REFLECT)
    out = cv2.resize(crop, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_AREA).astype(np.float32)
    grey = out.mean(2, keepdims=True)
    out = grey + (out - grey) * rng.uniform(0.6, 1.4)  # saturation
    out = (out - out.mean()) * rng.uniform(0.7, 1.3) + out.mean() + rng.uniform(-40, 40)  # contrast, brightness
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
    return np.clip(out, 0, 255).astype(np.uint8)


def adverse_conditions(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 -> the same view under capture failures, each drawn with probability 1/2:
    resolution lost (1.5-4x down and up again), defocus blur (sigma 0.5-2), under-exposure
    (0.25-0.8x light, gamma 1-1.6) with sensor noise (sigma 2-10), and an occluder (a flat patch of
    random grey over 5-35 % of the frame, anywhere)."""
    h, w = rgb.shape[:2]
    out = rgb.astype(np.float32)
    if rng.random() < 0.5:
        f = rng.uniform(1.5, 4.0)
        small = cv2.resize(out, (max(8, int(w / f)), max(8, int(h / f))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 2.0))
    if rng.random() < 0.5:
        out = 255.0 * (out / 255.0) ** rng.uniform(1.0, 1.6) * rng.uniform(0.25, 0.8)
        out = out + rng.normal(0, rng.uniform(2, 10), out.shape).astype(np.float32)
    if rng.random() < 0.5:
        area = rng.uniform(0.05, 0.35) * h * w
        aspect = rng.uniform(0.4, 2.5)
        ow, oh = min(w, int(np.sqrt(area * aspect))), min(h, int(np.sqrt(area / aspect)))
        x, y = int(rng.integers(0, w - ow + 1)), int(rng.integers(0, h - oh + 1))
        out[y : y + oh, x : x + ow] = rng.uniform(0, 255)
    return np.clip(out, 0, 255).astype(np.uint8)
