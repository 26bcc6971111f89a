"""Compact VLAD (Jegou et al.; Arandjelovic & Zisserman's intra-normalisation): a global
descriptor aggregated from local descriptors, for maps built with ``descriptor="vlad"``.

Each local descriptor (N, D) is assigned to its nearest vocabulary word (K, D); per word the
residuals are summed, signed-square-rooted (power law, alpha 0.5), L2-normalised per word
(intra-normalisation), and the (K * D,) vector is L2-normalised. A ``VladModel`` shipped with
a local model adds a PCA-whitening learned on a generic training-side pool (Jegou & Chum:
whitening removes the co-occurrences of bursty words): the (K * D,) vector becomes a (d,)
unit vector. The map's index then projects it (PCA-whitening on the map) and quantizes it like
any global descriptor.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from placekit.errors import BuildError
from placekit.index.quantize import PCAWhitening, assign, kmeans
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


@dataclass(frozen=True)
class VladModel:
    """A vocabulary (K, D) float32 and an optional PCA-whitening of the (K * D,) VLAD to d
    dims (mean (K * D,), projection (K * D, d))."""

    vocabulary: np.ndarray
    whitening: PCAWhitening | None = None

    @property
    def dim(self) -> int:
        return self.whitening.dim if self.whitening is not None else int(self.vocabulary.size)

    def describe(self, descriptors: np.ndarray) -> np.ndarray:
        """(N, D) local descriptors -> (dim,) float32 unit vector."""
        v = vlad(descriptors, self.vocabulary)
        if self.whitening is None:
            return v
        out = self.whitening.apply(v[None])[0]
        if not np.any(out):  # a VLAD equal to the pool mean: any fixed unit vector will do
            out[:] = 1.0 / np.sqrt(out.size)
        return out


def map_vlad(
    local: list[np.ndarray], words: int, seed: int = 0, shipped: VladModel | None = None
) -> tuple[VladModel, np.ndarray]:
    """The VLAD of every map image (local descriptors (n_i, D) float32 each): (the model,
    (N, dim) descriptors). ``shipped``: the model shipped with the local model; None learns a
    vocabulary on the images (no whitening). Raises ``BuildError`` when there are too few local
    features to learn it."""
    if shipped is not None:
        return shipped, np.stack([shipped.describe(d) for d in local])
    pool = np.concatenate(local)
    if len(pool) < words * MIN_DESCRIPTORS_PER_WORD:
        raise BuildError(
            f"too few local features ({len(pool)}) to learn a {words}-word VLAD vocabulary; "
            "add textured images or use descriptor='gem'"
        )
    model = VladModel(train_vocabulary(pool, words, seed=seed))
    return model, np.stack([model.describe(d) for d in local])


class VladExtractor:
    """Frame -> VLAD through a ``LocalFeatureExtractor``; the same ``describe`` /
    ``describe_bgr`` interface as ``GlobalExtractor``."""

    def __init__(self, local: LocalFeatureExtractor, model: VladModel):
        self.local = local
        self.model = model

    @property
    def dim(self) -> int:
        return self.model.dim

    def describe_with_features(self, bgr: np.ndarray) -> tuple[np.ndarray, LocalFeatures]:
        """(VLAD (dim,), the local features it aggregates: reused for verification)."""
        feats = self.local.extract(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
        return self.model.describe(feats.descriptors), feats

    def describe_bgr(self, bgr: np.ndarray) -> np.ndarray:
        return self.describe_with_features(bgr)[0]

    def describe(self, frame: Frame) -> np.ndarray:
        return self.describe_bgr(to_bgr(frame))
