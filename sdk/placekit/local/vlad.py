"""Compact VLAD (Jegou et al.; Arandjelovic & Zisserman's intra-normalisation): a global
descriptor aggregated from local descriptors, for maps built with ``descriptor="vlad"``.

Each local descriptor (N, D) is assigned to its nearest vocabulary word (K, D); per word the
residuals are summed, signed-square-rooted (power law, alpha 0.5), L2-normalised per word
(intra-normalisation), and the (K * D,) vector is L2-normalised. The map's index then projects
it (PCA-whitening) and quantizes it like any global descriptor.
"""

from __future__ import annotations

import cv2
import numpy as np

from placekit.errors import BuildError
from placekit.index.quantize import assign, kmeans
from placekit.inference.imageio import Frame, to_bgr
from placekit.local.extractor import LocalFeatureExtractor, LocalFeatures

DEFAULT_WORDS = 64
MAX_TRAINING_DESCRIPTORS = 100_000
MIN_DESCRIPTORS_PER_WORD = 4
ALPHA = 0.5


def train_vocabulary(descriptors: np.ndarray, words: int = DEFAULT_WORDS, seed: int = 0) -> np.ndarray:
    """(N, D) local descriptors -> (words, D) float32 vocabulary (k-means on a sample)."""
    x = np.asarray(descriptors, np.float32)
    if len(x) > MAX_TRAINING_DESCRIPTORS:
        x = x[np.random.default_rng(seed).choice(len(x), MAX_TRAINING_DESCRIPTORS, replace=False)]
    return kmeans(x, words, iters=15, seed=seed)


def vlad(descriptors: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    """(N, D) local descriptors -> (K * D,) float32 unit-norm VLAD (zeros -> a zero vector
    with one tiny constant so the result stays finite and unit-norm)."""
    k, d = vocabulary.shape
    v = np.zeros((k, d), np.float32)
    if len(descriptors):
        x = np.asarray(descriptors, np.float32)
        words = assign(x, vocabulary)
        np.add.at(v, words, x - vocabulary[words])
    v = (np.sign(v) * np.abs(v) ** ALPHA).astype(np.float32)
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    flat = v.ravel()
    norm = float(np.linalg.norm(flat))
    if norm == 0.0:
        flat[:] = 1.0 / np.sqrt(flat.size)
        return flat
    return flat / norm


def map_vlad(
    local: list[np.ndarray], words: int, seed: int = 0, vocabulary: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The VLAD of every map image (local descriptors (n_i, D) float32 each): (the vocabulary,
    (N, words * D) descriptors). ``vocabulary`` (words, D): a given one (the one shipped with the
    local model); None learns one on the images. Raises ``BuildError`` when there are too few
    local features to learn it."""
    if vocabulary is not None:
        return vocabulary, np.stack([vlad(d, vocabulary) for d in local])
    pool = np.concatenate(local)
    if len(pool) < words * MIN_DESCRIPTORS_PER_WORD:
        raise BuildError(
            f"too few local features ({len(pool)}) to learn a {words}-word VLAD vocabulary; "
            "add textured images or use descriptor='gem'"
        )
    vocabulary = train_vocabulary(pool, words, seed=seed)
    return vocabulary, np.stack([vlad(d, vocabulary) for d in local])


class VladExtractor:
    """Frame -> VLAD through a ``LocalFeatureExtractor``; the same ``describe`` /
    ``describe_bgr`` interface as ``GlobalExtractor``."""

    def __init__(self, local: LocalFeatureExtractor, vocabulary: np.ndarray):
        self.local = local
        self.vocabulary = np.asarray(vocabulary, np.float32)

    @property
    def dim(self) -> int:
        return int(self.vocabulary.size)

    def describe_with_features(self, bgr: np.ndarray) -> tuple[np.ndarray, LocalFeatures]:
        """(VLAD (K * D,), the local features it aggregates: reused for verification)."""
        feats = self.local.extract(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
        return vlad(feats.descriptors, self.vocabulary), feats

    def describe_bgr(self, bgr: np.ndarray) -> np.ndarray:
        return self.describe_with_features(bgr)[0]

    def describe(self, frame: Frame) -> np.ndarray:
        return self.describe_bgr(to_bgr(frame))
