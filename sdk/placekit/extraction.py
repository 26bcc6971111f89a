"""Describing map images, one shard at a time: the step of a map build that runs as
independent tasks (``placekit.executors``).

``describe_image`` is the one place an image becomes what a map stores of it: its global
descriptor and, when asked, its local keypoints and int8 descriptors. ``MapBuilder.add`` calls
it directly; ``MapBuilder.add_many`` hands shards of images to ``describe_shard`` (in this
process, with the builder's open models) or to ``extract_shard`` (on a Ray worker, which opens
the models an ``ExtractionSpec`` names once per worker process). A failing image becomes a
``Failed`` row naming it; it never takes its shard down with it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from placekit.errors import PlacekitError
from placekit.inference.engine import open_engine
from placekit.inference.extractors import GlobalExtractor
from placekit.inference.imageio import Frame, to_bgr
from placekit.local.extractor import LocalFeatureExtractor
from placekit.mapfile.pointmap import quantize_descriptors
from placekit.options import RuntimeOptions

SHARD_IMAGES = 32  # images per extraction task: large enough to pay for a task, small enough to balance


@dataclass(frozen=True)
class Described:
    """What a map keeps of one image. global_descriptor: (D,) float32 unit norm, None for VLAD
    maps (computed at build from the local features); keypoints: (K, 4) float32 x, y, size,
    angle and descriptors (K, d) int8, both None when the image gets no local features."""

    global_descriptor: np.ndarray | None
    keypoints: np.ndarray | None
    descriptors: np.ndarray | None


@dataclass(frozen=True)
class Failed:
    """An image that could not be described: its name and the error message."""

    name: str
    message: str


@dataclass(frozen=True)
class ShardItem:
    """One image of a shard: the frame (path or array), its place name, and whether it gets
    local features."""

    frame: Frame
    name: str
    wants_local: bool


@dataclass(frozen=True)
class LocalSpec:
    """A local-feature extractor by name (``rootsift`` or a local model name / path)."""

    name: str
    max_keypoints: int
    max_side: int
    detector: str


@dataclass(frozen=True)
class ExtractionSpec:
    """The models a worker opens to describe images: the global model file (None for VLAD
    maps) and the local extractor (None without local features), run with ``runtime``. Model
    paths must exist on every worker (shipped models do, in the same environment)."""

    global_model: str | None
    local: LocalSpec | None
    runtime: RuntimeOptions


def describe_image(
    frame: Frame, global_extractor: GlobalExtractor | None, local: LocalFeatureExtractor | None, wants_local: bool
) -> Described:
    """One image -> ``Described``. Raises ``PlacekitError`` (e.g. ``ImageReadError``) on bad input."""
    bgr = to_bgr(frame)
    descriptor = global_extractor.describe_bgr(bgr) if global_extractor is not None else None
    if local is None or not wants_local:
        return Described(descriptor, None, None)
    feats = local.extract(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    return Described(descriptor, feats.keypoints, quantize_descriptors(feats.descriptors))


def describe_shard(
    models: tuple[GlobalExtractor | None, LocalFeatureExtractor | None], shard: list[ShardItem]
) -> list[Described | Failed]:
    """``describe_image`` of every image of ``shard``, a ``Failed`` row for each that raised."""
    global_extractor, local = models
    out: list[Described | Failed] = []
    for item in shard:
        try:
            out.append(describe_image(item.frame, global_extractor, local, item.wants_local))
        except PlacekitError as exc:
            out.append(Failed(item.name, f"{type(exc).__name__}: {exc}"))
    return out


def extract_shard(spec: ExtractionSpec, shard: list[ShardItem]) -> list[Described | Failed]:
    """``describe_shard`` with the models ``spec`` names, opened once per worker process."""
    return describe_shard(open_models(spec), shard)


@functools.lru_cache(maxsize=2)
def open_models(spec: ExtractionSpec) -> tuple[GlobalExtractor | None, LocalFeatureExtractor | None]:
    """The (global, local) extractors of ``spec``; cached, so a worker opens them once."""
    from placekit.inference.loading import local_extractor

    global_extractor = None
    if spec.global_model is not None:
        global_extractor = GlobalExtractor(open_engine(spec.global_model, **spec.runtime.engine_kwargs()))
    local = None
    if spec.local is not None:
        s = spec.local
        local = local_extractor(s.name, s.max_keypoints, s.max_side, spec.runtime, detector=s.detector)[0]
    return global_extractor, local


def shards(items: list[Any], size: int = SHARD_IMAGES) -> list[list[Any]]:
    """``items`` cut into consecutive lists of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]
