"""Whitening of global descriptors, learned once and folded into GeMNet's final linear layer.

* ``learned_whitening`` (Lw, Radenovic et al.): whiten the *intra-class* covariance of matching
  pairs, then rotate by the PCA of the whole (inter-class) covariance and keep the top ``dim``
  directions: matching images move together, the directions that separate places stay.
* ``pca_whitening``: plain PCA-whitening of the descriptors, the usual baseline.

Both return ``(weight (dim, D), bias (dim,))`` so that the whitened descriptor is
``normalize(weight @ x + bias)`` for a unit descriptor ``x`` (D,).
"""

from __future__ import annotations

import numpy as np

SHRINKAGE = 0.1  # pull the intra-class covariance towards isotropic: it is estimated from few pairs
EIGEN_FLOOR = 1e-9


def _inverse_sqrt(cov: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(cov)
    vals = np.maximum(vals, EIGEN_FLOOR * vals.max())
    return (vecs / np.sqrt(vals)) @ vecs.T


def _shrink(cov: np.ndarray, amount: float) -> np.ndarray:
    d = len(cov)
    return (1 - amount) * cov + amount * np.trace(cov) / d * np.eye(d)


def learned_whitening(
    x: np.ndarray, pairs: np.ndarray, dim: int, shrinkage: float = SHRINKAGE, extra_intra: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """x (N, D) unit descriptors, pairs (P, 2) indices of matching images -> weight (dim, D), bias (dim,).
    ``extra_intra`` (D, D): a covariance added to the intra-class one, e.g. of export noise that
    matching images should also be invariant to."""
    if dim > x.shape[1]:
        raise ValueError(f"whitening to {dim} dimensions needs descriptors with at least that many, got {x.shape[1]}")
    if len(pairs) == 0:
        raise ValueError("learned whitening needs matching pairs")
    x = x.astype(np.float64)
    mean = x.mean(0)
    diff = x[pairs[:, 0]] - x[pairs[:, 1]]
    intra = _shrink(diff.T @ diff / len(diff), shrinkage)
    if extra_intra is not None:
        intra = intra + extra_intra
    whiten = _inverse_sqrt(intra)
    centred = (x - mean) @ whiten.T
    vals, vecs = np.linalg.eigh(centred.T @ centred / len(x))
    rotate = vecs[:, np.argsort(vals)[::-1][:dim]].T
    weight = rotate @ whiten
    return weight.astype(np.float32), (-weight @ mean).astype(np.float32)


def pca_whitening(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """x (N, D) -> weight (dim, D), bias (dim,) of PCA-whitening to ``dim`` dimensions."""
    x = x.astype(np.float64)
    mean = x.mean(0)
    vals, vecs = np.linalg.eigh(np.cov(x - mean, rowvar=False))
    top = np.argsort(vals)[::-1][:dim]
    weight = (vecs[:, top] / np.sqrt(np.maximum(vals[top], EIGEN_FLOOR * vals.max()))).T
    return weight.astype(np.float32), (-weight @ mean).astype(np.float32)


def apply(weight: np.ndarray, bias: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, dim) unit rows."""
    y = x @ weight.T + bias
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
