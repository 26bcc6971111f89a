"""Training and filling an index in steps an executor can run as tasks
(``placekit.executors``): one training step on a sample, then encoding over chunks, then one
assembly into the inverted lists. ``MapBuilder`` and the city-scale benchmark use it; the
result does not depend on where the steps ran."""

from __future__ import annotations

import functools

import numpy as np

from placekit.executors import Executor, LocalExecutor
from placekit.index.ivf import PlaceIndex, Recipe, SearchParams

MAX_TRAIN_VECTORS = 262_144  # larger inputs train on a seeded sample of this many, or of
TRAIN_VECTORS_PER_LIST = 32  # this many per inverted list when that is more (k-means needs rows per centroid)
ENCODE_CHUNK = 65_536  # vectors per encoding task


def train_index(recipe: str | Recipe, sample: np.ndarray, params: SearchParams, seed: int) -> PlaceIndex:
    """A trained, empty index: projection, rotation, coarse centroids and codebooks learned
    from ``sample`` (N, d_in)."""
    index = PlaceIndex(recipe, sample.shape[1], params)
    index.train(sample, seed=seed)
    return index


def training_rows(recipe: str | Recipe) -> int:
    """Rows an index of this recipe trains on: ``MAX_TRAIN_VECTORS``, or
    ``TRAIN_VECTORS_PER_LIST`` per inverted list when that is more."""
    recipe = recipe if isinstance(recipe, Recipe) else Recipe.parse(recipe)
    return max(MAX_TRAIN_VECTORS, TRAIN_VECTORS_PER_LIST * recipe.nlist)


def training_sample(x: np.ndarray, seed: int, rows: int = MAX_TRAIN_VECTORS) -> np.ndarray:
    """``x`` itself, or a seeded sample of ``rows`` rows (in order) when larger."""
    if len(x) <= rows:
        return x
    picked = np.sort(np.random.default_rng(seed).choice(len(x), rows, replace=False))
    return x[picked]


def build_index(
    recipe: str | Recipe,
    x: np.ndarray,
    ids: np.ndarray,
    params: SearchParams,
    seed: int = 0,
    executor: Executor | None = None,
) -> PlaceIndex:
    """An index of ``x`` (N, d_in) under ``ids`` (N,): trained on ``training_sample`` in one
    task, ``x`` encoded in chunks of ``ENCODE_CHUNK`` as tasks, assembled here."""
    executor = executor or LocalExecutor()
    sample = training_sample(x, seed, training_rows(recipe))
    index = executor.call(train_index, recipe, sample, params, seed)
    chunks = [x[i : i + ENCODE_CHUNK] for i in range(0, len(x), ENCODE_CHUNK)]
    parts = executor.map(functools.partial(PlaceIndex.encode, index), chunks, "encoding")
    index.add_encoded(ids, parts)
    return index
