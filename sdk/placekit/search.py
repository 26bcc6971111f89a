"""Searching a map for a descriptor, with or without a location prior.

With a ``Prior`` only places within ``prior.radius_m`` of ``prior.location`` are answers. A
tight prior (few places in its strip of the places table) scores those places exactly; a loose
one (more than ``WIDE_PRIOR_SHARE`` of the map) runs the usual search deeper and keeps what
lies inside the radius, falling back to the exact scoring when too little does.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from placekit.mapfile.placemap import PlaceMap
from placekit.types import Prior

WIDE_PRIOR_SHARE = 0.25  # a prior whose strip holds more of the map searches it all, then filters
WIDE_PRIOR_DEPTH = 4  # a loose prior searches this many times deeper ...
MAX_WIDE_PRIOR_K = 100  # ... up to this many candidates


def search_map(
    placemap: PlaceMap,
    descriptor: np.ndarray,
    k: int,
    nprobe: Optional[int],
    rerank: Optional[int],
    prior: Optional[Prior] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """descriptor (D,) -> (ids (k',), scores (k',)), best first; nprobe / rerank None use the
    map's search defaults."""
    index = placemap.index
    if prior is None:
        return index.search(descriptor, k=k, nprobe=nprobe, rerank=rerank)
    places = placemap.places
    centre = placemap.to_metric(prior.location)
    if places.strip_size(centre, prior.radius_m) > WIDE_PRIOR_SHARE * max(len(places), 1):
        ids, scores = index.search(
            descriptor, k=min(WIDE_PRIOR_DEPTH * k, MAX_WIDE_PRIOR_K), nprobe=nprobe, rerank=rerank
        )
        rows, present = places.rows_present(ids)
        ids, scores = ids[present], scores[present]
        inside = np.linalg.norm(np.asarray(places.xyz[rows])[:, :2] - centre[:2], axis=1) <= prior.radius_m
        if inside.sum() >= min(k, len(ids)) and inside.any():
            return ids[inside][:k], scores[inside][:k]
    return index.search_among(descriptor, places.within(centre, prior.radius_m), k=k)
