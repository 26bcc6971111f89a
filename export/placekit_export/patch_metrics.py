"""Patch-descriptor metrics on ground-truth pairs (HPatches-style; NumPy only).

Inputs are (N, D) descriptors of side A and side B where row i of A and row i of B show the same
3D point. Distances are Euclidean (descriptors are unit vectors, so this ranks like cosine).

* ``matching_map``: each A row ranks every B row; one true partner, so its AP is 1 / rank. Mean
  over rows (the HPatches *matching* task, per image pair).
* ``verification_map``: the true pairs against as many false ones (each A row with a random
  other B row), ranked by distance; average precision of the true pairs (the *verification* task).
* ``fpr95``: share of false pairs closer than the distance that keeps 95% of true pairs.
* ``matching_accuracy``: share of A rows whose nearest B row is their true partner.
"""

from __future__ import annotations

import numpy as np


def _true_and_false_distances(desc_a: np.ndarray, desc_b: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances of the true pairs (N,) and of each A row to a random other B row (N,)."""
    perm = np.random.default_rng(seed).permutation(len(desc_b))
    false = np.where(perm == np.arange(len(perm)), (perm + 1) % len(perm), perm)
    return np.linalg.norm(desc_a - desc_b, axis=1), np.linalg.norm(desc_a - desc_b[false], axis=1)


def matching_map(desc_a: np.ndarray, desc_b: np.ndarray, block: int = 2048) -> float:
    ranks = []
    for s in range(0, len(desc_a), block):
        a = desc_a[s : s + block]
        d = (a**2).sum(1)[:, None] + (desc_b**2).sum(1)[None] - 2 * a @ desc_b.T
        true = d[np.arange(len(a)), np.arange(s, s + len(a))]
        ranks.append(1 + (d < true[:, None]).sum(1))
    return float((1.0 / np.concatenate(ranks)).mean())


def verification_map(desc_a: np.ndarray, desc_b: np.ndarray, seed: int = 0) -> float:
    pos, neg = _true_and_false_distances(desc_a, desc_b, seed)
    dist = np.r_[pos, neg]
    label = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    label = label[np.argsort(dist, kind="stable")]
    precision = np.cumsum(label) / np.arange(1, len(label) + 1)
    return float((precision * label).sum() / label.sum())


def fpr95(desc_a: np.ndarray, desc_b: np.ndarray, seed: int = 0) -> float:
    pos, neg = _true_and_false_distances(desc_a, desc_b, seed)
    return float((neg <= np.percentile(pos, 95)).mean())


def matching_accuracy(desc_a: np.ndarray, desc_b: np.ndarray) -> float:
    return float(((desc_a @ desc_b.T).argmax(1) == np.arange(len(desc_a))).mean())


def all_metrics(desc_a: np.ndarray, desc_b: np.ndarray) -> dict[str, float]:
    return {
        "matching_mAP": matching_map(desc_a, desc_b),
        "verification_mAP": verification_map(desc_a, desc_b),
        "fpr95": fpr95(desc_a, desc_b),
        "pairs": int(len(desc_a)),
    }
