"""Clustered synthetic descriptors for index benchmarks (documented generator).

``clustered(n, d, seed)``: a Gaussian mixture of ``max(n // 100, 16)`` clusters. Centres are
drawn with a decaying spectrum (variance of axis i proportional to 1 / (1 + i / 16)), points
are centre + anisotropic noise (same decay, scale 0.6 of the centre spread), then L2-normalised,
like real global descriptors (unit norm, a few dominant directions, many near neighbours).
Queries are fresh draws from the same mixture (never database points).
"""
from __future__ import annotations

import numpy as np


def clustered(n: int, d: int = 256, seed: int = 0, n_clusters: int | None = None,
              centre_seed: int = 12345) -> np.ndarray:
    k = n_clusters or max(n // 100, 16)
    spectrum = 1.0 / np.sqrt(1.0 + np.arange(d) / 16.0)
    centres = np.random.default_rng(centre_seed).normal(size=(k, d)).astype(np.float32) * spectrum
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, 65536):
        m = min(65536, n - s)
        x = centres[rng.integers(0, k, m)] + 0.6 * rng.normal(size=(m, d)).astype(np.float32) * spectrum
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def dataset(n: int, n_queries: int, d: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Database and queries from the same mixture (the cluster count follows the database)."""
    k = max(n // 100, 16)
    return clustered(n, d, seed=1, n_clusters=k), clustered(n_queries, d, seed=2, n_clusters=k)
