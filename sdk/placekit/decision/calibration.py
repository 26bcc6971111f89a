"""Calibrate a map's decision thresholds on its own images.

For each map image (up to ``max_queries`` of them) two searches are simulated:

* leave-one-out: the image itself removed; its best match is *correct* when within
  ``match_radius_m`` of it. Correct matches give positive scores, wrong ones negatives.
* place-out: every image within ``match_radius_m`` removed, simulating a query from a place the
  map does not cover; its best score is an impostor (negative) score.

With capture ``groups`` (video clips, drives, survey days), the whole group of the query is
removed instead of the image alone, so a positive is a match found in another capture of the
place, as a later visit would be. When fewer than ``MIN_GROUP_POSITIVES`` such positives exist
(the map is one drive), calibration falls back to leaving out the image alone and says so in
``stats["groups"]``.

``unknown_threshold`` is the lowest score at which the share of positives among all answers
at or above it reaches ``target_precision`` (in-map and out-of-map queries weighted equally).

Place-out searches only see the map's own images. A map of one road or one building, whitened
on itself, scores its own other places low, while a photo of somewhere else entirely may score
higher. ``negatives``: descriptors of images known *not* to be in the map (another street,
another building; ``MapBuilder.add_negative``). Each one's best score is an out-of-map answer;
they then make up half of the out-of-map evidence (the place-out impostors the other half,
each side represented by the same number of evenly spaced quantiles).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from placekit.geometry.fusion import fuse
from placekit.index.ivf import PlaceIndex
from placekit.local.verification import DEFAULT_MIN_INLIERS, MIN_MATCHES, verify
from placekit.mapfile.pointmap import PointMap
from placekit.options import DEFAULT_MATCH_RADIUS_M, DEFAULT_TARGET_PRECISION

DEFAULT_MARGIN = 0.02
DEFAULT_TEMPERATURE = 0.02  # softmax temperature (score units) of the position fusion
MARGIN_QUANTILE = 0.9  # the ambiguity margin covers this share of near-tie score gaps
UNCERTAINTY_QUANTILE = 0.68  # base uncertainty: this quantile of fused-position errors (1 sigma)
FALLBACK_POSITIVE_QUANTILE = 0.02  # with no negatives, the threshold keeps this share of positives out
MIN_MARGIN, MAX_MARGIN = 0.005, 0.1
MIN_GROUP_POSITIVES = 10
MIN_CALIBRATION_POSITIVES = 10  # fewer: the threshold is a guess, and map build says so
CROSS_FIT_FOLDS = 5
MAX_CALIBRATION_QUERIES = 2000
MAX_INLIER_CALIBRATION_QUERIES = 200  # each verifies top_k places: slower per query
DECISIVE_MIN_VERIFIED_RECALL = 0.9  # share of the map's own correct matches that must verify


@dataclass(frozen=True)
class Calibration:
    """Decision thresholds of one map.

    unknown_threshold: top score below which the answer is ``unknown``.
    ambiguity_margin: ``ambiguous`` when a place farther than 2 x match_radius_m scores within
    this margin of the best. temperature: softmax temperature of the position fusion weights.
    base_uncertainty_m: 68th percentile of fused-position errors on the map's own images.
    confidence_slope / confidence_intercept: logistic model of P(top match correct | score),
    fitted on the same calibration samples. min_inliers: geometrically verified local-feature
    matches that make a retrieved place trustworthy on their own (0: the map has no local
    features).
    """

    unknown_threshold: float = 0.0
    ambiguity_margin: float = DEFAULT_MARGIN
    match_radius_m: float = DEFAULT_MATCH_RADIUS_M
    temperature: float = DEFAULT_TEMPERATURE
    base_uncertainty_m: float = 5.0
    confidence_slope: float = 0.0
    confidence_intercept: float = 0.0
    target_precision: float = DEFAULT_TARGET_PRECISION
    min_inliers: int = 0
    stats: dict = field(default_factory=dict)

    @property
    def verification_decisive(self) -> bool:
        """Whether geometric verification may re-rank and decide on this map: true when, at
        build, ``min_inliers`` did not miss the target precision on the map's own images and at
        least ``DECISIVE_MIN_VERIFIED_RECALL`` of their correct matches reached it (posed,
        overlapping views: Strecha, KITTI). Elsewhere (wide baselines, look-alike interiors)
        few correct matches verify and wrong ones sometimes do; there inlier counts are
        reported with the matches but the similarity ranking and decision stand."""
        verification = self.stats.get("verification") or {}
        recall = verification.get("recall_at_threshold")
        failed = "never reached" in str(verification.get("rule", ""))
        return not failed and recall is not None and recall >= DECISIVE_MIN_VERIFIED_RECALL

    def confidence(self, score: float) -> float:
        z = self.confidence_slope * score + self.confidence_intercept
        return float(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        return cls(**d)


def calibrate(
    index: PlaceIndex,
    descriptors: np.ndarray,
    ids: np.ndarray,
    positions: np.ndarray,
    radius: float,
    target_precision: float,
    top_k: int = 5,
    temperature: float = DEFAULT_TEMPERATURE,
    max_queries: int = MAX_CALIBRATION_QUERIES,
    seed: int = 0,
    groups: np.ndarray | None = None,
    negatives: np.ndarray | None = None,
    refit: Callable[[np.ndarray], PlaceIndex] | None = None,
) -> Calibration:
    """descriptors (N, d) raw, ids (N,), positions (N, 3) of the places stored in ``index``;
    groups (N,) capture-group labels or None; negatives (M, d) raw descriptors of images of
    other places, or None.

    refit: for an index that learned something from the map's own vectors (a PCA-whitening),
    ``refit(train_rows)`` returns an index of the same recipe trained on ``descriptors[train_rows]``
    ((N,) bool) holding all N vectors. Calibration is then cross-fitted: the map's groups (or
    images) are split into ``CROSS_FIT_FOLDS`` folds and each query is searched in the index
    trained without its fold, as a query or a photo from elsewhere is never part of what the
    map learned. Without it an image inside the whitening scores its own neighbours
    unrealistically low and the threshold falls below what foreign photos score."""
    n = len(ids)
    queries = _calibration_queries(n, max_queries, seed)
    searchers = _cross_fitted(refit, n, groups, queries, seed) if refit is not None else [(index, queries)]
    samples = _simulate_all(searchers, descriptors, ids, positions, radius, top_k, temperature, groups)
    group_rule = "none given"
    if groups is not None:
        group_rule = "other groups only"
        if len(samples[0]) < MIN_GROUP_POSITIVES:
            group_rule = (
                f"fell back to leave-one-out: only {len(samples[0])} matches across groups (< {MIN_GROUP_POSITIVES})"
            )
            samples = _simulate_all(searchers, descriptors, ids, positions, radius, top_k, temperature, None)
    external = _best_scores(index, negatives) if negatives is not None and len(negatives) else []
    cal = _fit(samples, radius, target_precision, temperature, len(queries), group_rule, external)
    cal.stats["cross_fitted_folds"] = len(searchers) if refit is not None else 0
    return cal


def refitter(index: PlaceIndex, x: np.ndarray, ids: np.ndarray, seed: int) -> Callable[[np.ndarray], PlaceIndex] | None:
    """The ``refit`` argument of ``calibrate`` for a map's index: a function that trains an
    index of the map's recipe on some rows of ``x`` (N, d) ((N,) bool) and adds all N vectors.
    None when the index learns nothing from the map that calibration must hold out (no PCA),
    or when refitting is too costly (IVF-PQ maps, built from >= 20,000 images, whose PCA barely
    depends on any one image)."""
    recipe = index.recipe
    if not (recipe.flat and recipe.pca_dim):
        return None

    def refit(rows: np.ndarray) -> PlaceIndex:
        fold_recipe = replace(recipe, pca_dim=min(recipe.pca_dim, int(rows.sum()) - 1))
        fold_index = PlaceIndex(fold_recipe, x.shape[1], index.params)
        fold_index.train(x[rows], seed=seed)
        fold_index.add(x, ids)
        return fold_index

    return refit


def _cross_fitted(
    refit: Callable[[np.ndarray], PlaceIndex], n: int, groups: np.ndarray | None, queries: np.ndarray, seed: int
) -> list[tuple[PlaceIndex, np.ndarray]]:
    """[(index trained without fold f, the queries of fold f)]: folds of whole groups (or of
    single images without groups), assigned at random."""
    units = np.unique(groups, return_inverse=True)[1] if groups is not None else np.arange(n)
    n_folds = min(CROSS_FIT_FOLDS, int(units.max()) + 1)
    fold_of_unit = np.random.default_rng(seed).permutation(int(units.max()) + 1) % n_folds
    fold = fold_of_unit[units]
    out = []
    for f in range(n_folds):
        in_fold = queries[fold[queries] == f]
        if len(in_fold) and (fold != f).sum() >= 2:
            out.append((refit(fold != f), in_fold))
    return out


def _simulate_all(searchers, descriptors, ids, positions, radius, top_k, temperature, groups):
    """``_simulate`` over each (index, queries) pair; the samples concatenated."""
    parts = [
        _simulate(index, descriptors, ids, positions, radius, top_k, temperature, queries, groups)
        for index, queries in searchers
    ]
    return tuple([v for part in parts for v in part[k]] for k in range(5))


def _best_scores(index: PlaceIndex, negatives: np.ndarray) -> list[float]:
    out = []
    for d in negatives:
        _, scores = index.search(d, k=1)
        if len(scores):
            out.append(float(scores[0]))
    return out


def _spread(values: list[float], k: int) -> list[float]:
    """``k`` evenly spaced quantiles of ``values`` (their distribution at a fixed count)."""
    return [float(v) for v in np.quantile(values, (np.arange(k) + 0.5) / k)] if values and k else []


def _out_of_map(impostors: list[float], external: list[float], n_queries: int) -> list[float]:
    """Place-out impostors alone, or, with external negatives, both kinds at equal weight."""
    if not external:
        return impostors
    if not impostors:
        return _spread(external, max(n_queries, 1))
    half = (len(impostors) + 1) // 2
    return _spread(impostors, half) + _spread(external, half)


def _calibration_queries(n: int, max_queries: int, seed: int) -> np.ndarray:
    """Rows of the map images used as calibration queries: all, or ``max_queries`` at random."""
    rng = np.random.default_rng(seed)
    return np.arange(n) if n <= max_queries else np.sort(rng.choice(n, max_queries, replace=False))


def _left_out(q: int, n: int, groups: np.ndarray | None) -> np.ndarray:
    """(N,) bool: the map images a calibration query must not find: its capture group, or
    itself without groups (as a later visit would not find the frames it was taken with)."""
    return groups == groups[q] if groups is not None else np.arange(n) == q


def _search_without(
    index: PlaceIndex, descriptor: np.ndarray, row_of: dict[int, int], excluded: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Search ``index`` as if the rows in ``excluded`` ((N,) bool) were not in it: up to ``k``
    (rows (k',), scores (k',)), best first."""
    found, scores = index.search(descriptor, k=k + int(excluded.sum()))
    rows = np.array([row_of[int(i)] for i in found], dtype=np.int64)
    keep = ~excluded[rows] if len(rows) else np.zeros(0, bool)
    return rows[keep][:k], scores[keep][:k]


def _simulate(index, descriptors, ids, positions, radius, top_k, temperature, queries, groups):
    """Leave-out searches -> (positive scores, wrong top-1 scores, impostor scores, fused
    position errors, score gaps of near ties)."""
    row_of = {int(i): r for r, i in enumerate(ids)}
    positives, wrong, impostors, errors, near_tie_gaps = [], [], [], [], []
    for q in queries:
        near = np.linalg.norm(positions - positions[q], axis=1) <= radius
        same = _left_out(q, len(ids), groups)
        # deep enough that the best place outside the radius is found too (the impostor)
        rows, scores = _search_without(index, descriptors[q], row_of, same, top_k + int((near & ~same).sum()) + 1)
        if len(rows) == 0:
            continue
        outside = ~near[rows]
        if outside.any():
            impostors.append(float(scores[outside][0]))
        rows, scores = rows[:top_k], scores[:top_k]
        correct = near[rows]
        if correct[0]:
            positives.append(float(scores[0]))
            fused, _, _ = fuse(scores, positions[rows], radius, temperature)
            errors.append(float(np.linalg.norm(fused - positions[q])))
        else:
            wrong.append(float(scores[0]))
            if correct.any():
                near_tie_gaps.append(float(scores[0] - scores[correct][0]))
    return positives, wrong, impostors, errors, near_tie_gaps


def _fit(
    samples: tuple[list[float], ...],
    radius: float,
    target_precision: float,
    temperature: float,
    n_queries: int,
    group_rule: str,
    external: Sequence[float] = (),
) -> Calibration:
    """samples: (positive scores, wrong top-1 scores, impostor scores, fused position errors,
    near-tie gaps) from ``_simulate``."""
    positives, wrong, impostors, errors, near_tie_gaps = samples
    external = list(external)
    pos, neg = np.array(positives), np.array(wrong + _out_of_map(impostors, external, n_queries))
    threshold, how = _threshold(pos, neg, target_precision)
    if external:
        # negatives add evidence; they must never lower the bar the map's own images set
        own_threshold, own_how = _threshold(pos, np.array(wrong + impostors), target_precision)
        if own_threshold > threshold:
            threshold, how = own_threshold, own_how + " (map's own images; above the negatives' threshold)"
    slope, intercept = fit_logistic(pos, neg)
    margin = DEFAULT_MARGIN
    if len(near_tie_gaps) >= 5:
        margin = float(np.clip(np.quantile(near_tie_gaps, MARGIN_QUANTILE), MIN_MARGIN, MAX_MARGIN))
    base = float(np.quantile(errors, UNCERTAINTY_QUANTILE)) if errors else radius / 2.0
    accepted_pos = int((pos >= threshold).sum())
    stats = {
        "queries": int(n_queries),
        "groups": group_rule,
        "positives": int(len(pos)),
        "wrong_top1": int(len(wrong)),
        "impostors": int(len(impostors)),
        "threshold_rule": how,
        "precision_at_threshold": _precision(pos, neg, threshold),
        "recall_at_threshold": float(accepted_pos / len(pos)) if len(pos) else 0.0,
        "impostor_rejection": float((np.array(impostors) < threshold).mean()) if impostors else None,
    }
    if external:
        stats["negatives"] = len(external)
        stats["negative_rejection"] = float((np.array(external) < threshold).mean())
    stats["warnings"] = calibration_warnings(stats, target_precision)
    return Calibration(
        unknown_threshold=float(threshold),
        ambiguity_margin=margin,
        match_radius_m=float(radius),
        temperature=temperature,
        base_uncertainty_m=max(base, 0.1),
        confidence_slope=slope,
        confidence_intercept=intercept,
        target_precision=float(target_precision),
        stats=stats,
    )


def calibration_warnings(stats: dict, target_precision: float) -> list[str]:
    """What a map builder should be told about its calibration: the target precision not
    reached, or too little evidence to judge out-of-map photos."""
    out = []
    rule = stats.get("threshold_rule", "")
    precision = stats.get("precision_at_threshold")
    fallback = rule.startswith(("no positives", "no negatives", "no calibration data"))
    if fallback:
        out.append(f"calibration incomplete ({rule}); the 'unknown' threshold is a fallback, not a measurement")
    elif "never reached" in rule or (precision is not None and precision < target_precision):
        out.append(
            f"target precision {target_precision:.2f} not reached on the map's own images "
            f"(best: {_fmt(precision)}); expect wrong 'localized' answers. Add more views per place, "
            "capture groups, or negatives (photos of places not in the map)"
        )
    if not fallback and stats.get("positives", 0) < MIN_CALIBRATION_POSITIVES:
        out.append(
            f"only {stats.get('positives', 0)} map images found a correct match with themselves left out "
            f"(< {MIN_CALIBRATION_POSITIVES}): the 'unknown' threshold rests on little evidence"
        )
    return out


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.2f}"


def _precision(pos: np.ndarray, neg: np.ndarray, t: float) -> float | None:
    a, b = int((pos >= t).sum()), int((neg >= t).sum())
    return float(a / (a + b)) if a + b else None


def _threshold(pos: np.ndarray, neg: np.ndarray, target: float) -> tuple[float, str]:
    if len(pos) == 0 and len(neg) == 0:
        return 0.0, "no calibration data"
    if len(pos) == 0:
        return float(np.quantile(neg, target)), "no positives: rejects the target share of impostors"
    if len(neg) == 0:
        return float(np.quantile(pos, FALLBACK_POSITIVE_QUANTILE)), "no negatives: 2nd percentile of positive scores"
    for t in np.unique(np.concatenate([pos, neg])):
        p = _precision(pos, neg, t)
        if p is not None and p >= target and (pos >= t).any():
            return float(t), "lowest score reaching the target precision"
    candidates = np.unique(pos)
    precisions = np.array([_precision(pos, neg, t) for t in candidates])
    best = candidates[int(np.argmax(precisions))]  # the lowest score of the best precision
    return float(best), "target precision never reached: the score of the highest precision"


def fit_logistic(pos: np.ndarray, neg: np.ndarray, iters: int = 50, l2: float = 1e-3) -> tuple[float, float]:
    """P(correct | score) = sigmoid(slope * score + intercept), fitted by Newton's method with
    positives and negatives weighted equally (the same prior as the threshold). Returns a flat
    0.5 when one class is missing."""
    if len(pos) == 0 or len(neg) == 0:
        return 0.0, 0.0
    x = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    w = np.concatenate([np.full(len(pos), 0.5 / len(pos)), np.full(len(neg), 0.5 / len(neg))])
    a = np.stack([x, np.ones_like(x)], axis=1)
    theta = np.zeros(2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ theta, -50, 50)))
        grad = a.T @ (w * (p - y)) + l2 * np.array([theta[0], 0.0])
        hess = (a * (w * p * (1 - p))[:, None]).T @ a + l2 * np.diag([1.0, 0.0]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(theta[0]), float(theta[1])


def calibrate_inliers(
    index: PlaceIndex,
    descriptors: np.ndarray,
    ids: np.ndarray,
    positions: np.ndarray,
    pointmap: PointMap,
    radius: float,
    target_precision: float,
    groups: np.ndarray | None = None,
    top_k: int = 5,
    max_queries: int = MAX_INLIER_CALIBRATION_QUERIES,
    seed: int = 0,
) -> tuple[int, dict]:
    """Smallest inlier count whose verified top answers reach ``target_precision`` on the map's
    own images (leave-one-out / leave-group-out). Returns (min_inliers, stats)."""
    n = len(ids)
    row_of = {int(i): r for r, i in enumerate(ids)}
    correct_counts: list[int] = []
    wrong_counts: list[int] = []
    for q in _calibration_queries(n, max_queries, seed):
        kps, desc, _ = pointmap.features_of(int(ids[q]))
        if len(kps) < MIN_MATCHES:
            continue
        rows, _ = _search_without(index, descriptors[q], row_of, _left_out(q, n, groups), top_k)
        if len(rows) == 0:
            continue
        inliers = np.maximum(verify(kps[:, :2], desc, pointmap, ids[rows]), 0)
        best = int(np.argmax(inliers))
        near = np.linalg.norm(positions[rows[best]] - positions[q]) <= radius
        (correct_counts if near else wrong_counts).append(int(inliers[best]))
    pos, neg = np.array(correct_counts), np.array(wrong_counts)
    threshold = DEFAULT_MIN_INLIERS
    rule = f"default {DEFAULT_MIN_INLIERS}: too few calibration samples"
    if len(pos) >= 10:
        for t in range(DEFAULT_MIN_INLIERS, 200):
            a, b = int((pos >= t).sum()), int((neg >= t).sum())
            if a and a / (a + b) >= target_precision:
                threshold, rule = t, f"smallest count (>= {DEFAULT_MIN_INLIERS}) reaching the target precision"
                break
        else:
            rule = f"target precision never reached on the map's images: default {DEFAULT_MIN_INLIERS}"
    stats = {
        "queries": int(len(pos) + len(neg)),
        "correct": int(len(pos)),
        "wrong": int(len(neg)),
        "rule": rule,
        "recall_at_threshold": float((pos >= threshold).mean()) if len(pos) else None,
        "median_inliers_correct": float(np.median(pos)) if len(pos) else None,
        "median_inliers_wrong": float(np.median(neg)) if len(neg) else None,
    }
    return int(threshold), stats
