"""Training tuples for GeM without manual labels: who is a positive, who may be a negative.

A ``TrainingSet`` holds N images and, per image, a short list of positive candidates. Negatives
are any image that ``TrainingSet.negative_mask`` allows: another *cluster* (an SfM reconstruction's photo
collection, or a labelled area), or, inside one cluster of geo-tagged images, one farther than
``NEGATIVE_RADIUS_M``. Three sources build it:

* ``from_sfm``: images that share at least ``MIN_SHARED_POINTS`` 3D points; the candidates are
  the top ``TOP_K_POSITIVES`` by shared points, and training picks one of them at random (as in
  Radenovic et al., not the nearest by descriptor, so positives stay hard).
* ``from_geotags``: positions (metres) and viewing directions; positives within
  ``POSITIVE_RADIUS_M`` looking within ``POSITIVE_MAX_ANGLE_DEG`` of the same way, negatives
  beyond ``NEGATIVE_RADIUS_M``.
* ``from_places``: place-labelled frames (IE Tower): positives from the same place in another
  capture clip, negatives from other areas.

``mine_tuples`` re-mines hard negatives with the current descriptors: the nearest allowed images,
at most one per cluster, so the negatives of one tuple are diverse.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .sfm import SfmScene

MIN_SHARED_POINTS = 25
TOP_K_POSITIVES = 5
POSITIVE_RADIUS_M = 10.0
POSITIVE_MAX_ANGLE_DEG = 45.0
NEGATIVE_RADIUS_M = 25.0


@dataclass
class TrainingSet:
    images: list[Path] = field(default_factory=list)
    cluster: list[int] = field(default_factory=list)  # (N,) negatives come from other clusters...
    xyz: list[tuple[float, float, float]] = field(default_factory=list)  # ... or from far away (NaN: never)
    positives: list[np.ndarray] = field(default_factory=list)  # (N,) arrays of candidate indices
    source: list[str] = field(default_factory=list)  # (N,) which dataset each image came from

    def __len__(self) -> int:
        return len(self.images)

    def extend(self, other: TrainingSet) -> TrainingSet:
        offset, cluster_offset = len(self), (max(self.cluster) + 1 if self.cluster else 0)
        self.images += other.images
        self.cluster += [c + cluster_offset for c in other.cluster]
        self.xyz += other.xyz
        self.positives += [p + offset for p in other.positives]
        self.source += other.source
        return self

    def queries(self) -> np.ndarray:
        """Indices of images that have at least one positive."""
        return np.array([i for i, p in enumerate(self.positives) if len(p)], np.int64)

    def negative_mask(self, i: int) -> np.ndarray:
        """(N,) bool: which images may serve as negatives for image i."""
        cluster = np.asarray(self.cluster)
        mask = cluster != cluster[i]
        xyz = np.asarray(self.xyz, np.float64)
        if np.isfinite(xyz[i]).all():
            far = np.linalg.norm(xyz - xyz[i], axis=1) > NEGATIVE_RADIUS_M
            mask |= (cluster == cluster[i]) & np.nan_to_num(far, nan=False).astype(bool)
        return mask

    def summary(self) -> dict:
        q = self.queries()
        return {
            "images": len(self),
            "clusters": len(set(self.cluster)),
            "queries_with_positives": int(len(q)),
            "positive_pairs": int(sum(len(p) for p in self.positives)),
            "by_source": {s: self.source.count(s) for s in sorted(set(self.source))},
        }


NAN3 = (float("nan"),) * 3


def from_sfm(collections: dict[str, list[SfmScene]], label: str = "sfm") -> TrainingSet:
    """Positives from co-visibility; one cluster per photo collection (folder), so every
    reconstruction of one collection stays out of the other's negatives."""
    out = TrainingSet()
    for c, (_, scenes) in enumerate(sorted(collections.items())):
        for scene in scenes:
            offset = len(out)
            covis = scene.covisibility.astype(np.int64).copy()
            np.fill_diagonal(covis, 0)
            for i in range(len(scene.images)):
                order = np.argsort(-covis[i], kind="stable")
                keep = order[covis[i, order] >= MIN_SHARED_POINTS][:TOP_K_POSITIVES]
                out.positives.append(keep + offset)
            out.images += scene.images
            out.cluster += [c] * len(scene.images)
            out.xyz += [NAN3] * len(scene.images)
            out.source += [label] * len(scene.images)
    return out


def from_geotags(
    paths: list[Path], xyz: np.ndarray, view_dirs: np.ndarray | None = None, label: str = "geotagged"
) -> TrainingSet:
    """paths (N,), xyz (N, 3) metres, view_dirs (N, 3) unit viewing directions or None."""
    xyz = np.asarray(xyz, np.float64)
    dist = np.linalg.norm(xyz[:, None] - xyz[None], axis=2)
    close = dist <= POSITIVE_RADIUS_M
    if view_dirs is not None:
        cos = np.clip(view_dirs @ view_dirs.T, -1, 1)
        close &= cos >= np.cos(np.radians(POSITIVE_MAX_ANGLE_DEG))
    np.fill_diagonal(close, False)
    positives = [np.flatnonzero(row)[np.argsort(dist[i, row])][: TOP_K_POSITIVES * 4] for i, row in enumerate(close)]
    return TrainingSet(list(paths), [0] * len(paths), [tuple(p) for p in xyz], positives, [label] * len(paths))


def from_places(
    paths: list[Path],
    areas: list[str],
    clips: list[str],
    label: str = "places",
    places: list[str] | None = None,
    negatives_by_place: bool = False,
) -> TrainingSet:
    """Positives: same place (default: same area), another clip. Negatives: other areas (one
    cluster per area). With ``places`` finer than ``areas`` (e.g. floor + area type), positives
    are instance-level while look-alikes of the same area type are never used as negatives,
    unless ``negatives_by_place``: then one cluster per place, and the same area type on another
    floor is a negative (instance-level training)."""
    places = list(areas) if places is None else places
    if negatives_by_place:
        areas = places
    area_ids = {a: k for k, a in enumerate(sorted(set(areas)))}
    by_place: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(places):
        by_place[p].append(i)
    positives = [
        np.array([j for j in by_place[places[i]] if clips[j] != clips[i]], np.int64) for i in range(len(paths))
    ]
    return TrainingSet(list(paths), [area_ids[a] for a in areas], [NAN3] * len(paths), positives, [label] * len(paths))


def mine_tuples(
    data: TrainingSet,
    descriptors: np.ndarray,
    queries: np.ndarray,
    n_negatives: int,
    rng: np.random.Generator,
    pool: np.ndarray | None = None,
) -> list[tuple[int, int, list[int]]]:
    """(query, positive, negatives) index tuples. descriptors: (N, D) unit rows of the current
    network; negatives are the nearest allowed images from ``pool`` (all when None), at most one
    per cluster."""
    cluster = np.asarray(data.cluster)
    pool = np.arange(len(data)) if pool is None else pool
    tuples = []
    for q in queries:
        positive = int(rng.choice(data.positives[q]))
        allowed = pool[data.negative_mask(int(q))[pool]]
        order = allowed[np.argsort(-(descriptors[allowed] @ descriptors[q]), kind="stable")]
        negatives, used = [], set()
        for j in order:
            if cluster[j] in used and cluster[j] != cluster[q]:
                continue
            used.add(cluster[j])
            negatives.append(int(j))
            if len(negatives) == n_negatives:
                break
        if len(negatives) == n_negatives:
            tuples.append((int(q), positive, negatives))
    return tuples
