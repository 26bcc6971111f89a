"""Training and filling an index in steps an executor can run as tasks
(``placekit.executors``): one training step on a sample, then encoding over chunks, then one
assembly into the inverted lists. ``MapBuilder`` and the city-scale benchmark use it; the
result does not depend on where the steps ran."""

from __future__ import annotations

import functools

import numpy as np

from placekit.executors import Executor, LocalExecutor
from placekit.index.ivf import PlaceIndex, Recipe, SearchParams

MAX_TRAIN_VECTORS = 262_144  # larger inputs train on a seeded sample of this many
ENCODE_CHUNK = 65_536  # vectors per encoding task


def train_index(recipe: str | Recipe, sample: np.ndarray, params: SearchParams, seed: int) -> PlaceIndex:
    """A trained, empty index: projection, rotation, coarse centroids and codebooks learned
    from ``sample`` (N, d_in)."""
    index = PlaceIndex(recipe, sample.shape[1], params)
    index.train(sample, seed=seed)
    return index


def training_sample(x: np.ndarray, seed: int) -> np.ndarray:
    """``x`` itself, or a seeded sample of ``MAX_TRAIN_VECTORS`` rows (in order) when larger."""
    if len(x) <= MAX_TRAIN_VECTORS:
        return x
    rows = np.sort(np.random.default_rng(seed).choice(len(x), MAX_TRAIN_VECTORS, replace=False))
    return x[rows]


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
    index = executor.call(train_index, recipe, training_sample(x, seed), params, seed)
    chunks = [x[i : i + ENCODE_CHUNK] for i in range(0, len(x), ENCODE_CHUNK)]
    parts = executor.map(functools.partial(PlaceIndex.encode, index), chunks, "encoding")
    index.add_encoded(ids, parts)
    return index
