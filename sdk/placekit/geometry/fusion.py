"""Fusing the positions of several map places into one answer."""

from __future__ import annotations

import numpy as np


def weighted_position(weights: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, float]:
    """weights (k,) non-negative, not all zero; positions (k, 3) metres.
    Returns (the weighted mean position (3,), the weighted RMS distance to it in metres)."""
    w = np.asarray(weights, float)
    w = w / w.sum()
    position = w @ positions
    spread = float(np.sqrt(w @ ((positions - position) ** 2).sum(1)))
    return position, spread


def fuse(
    scores: np.ndarray, positions: np.ndarray, radius: float, temperature: float, floor: float = -np.inf
) -> tuple[np.ndarray, float, np.ndarray]:
    """Similarity-weighted mean of the positions within ``radius`` of the best match whose score
    is >= floor. Returns (position (3,), weighted spread in metres, used mask (k,))."""
    dist = np.linalg.norm(positions - positions[0], axis=1)
    used = (dist <= radius) & (scores >= floor)
    used[0] = True
    pos, spread = weighted_position(np.exp((scores[used] - scores[0]) / temperature), positions[used])
    return pos, spread, used
