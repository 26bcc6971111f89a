"""``placekit eval``: build a map from a dataset's database images, localize every query
through the public ``Localizer`` and measure accuracy, decisions, speed and size.

A dataset is a folder (``docs/data.md``): ``database/`` + ``database.csv`` and ``queries/`` +
``queries.csv``; or the common VPR layout, ``database/`` and ``queries/`` whose file names hold
UTM positions as ``@east@north@...`` (read as x, y metres in a local frame).

A database image is a correct match for a query when their positions are within
``threshold_m`` (default 25 m).
"""

from __future__ import annotations

import os
import resource
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np

from placekit.errors import CSVFormatError
from placekit.geometry.frames import LocalFrame, frame_for, locations_to_metric
from placekit.inference.imageio import list_images
from placekit.ingest import read_locations_and_groups
from placekit.options import DEFAULT_MATCH_RADIUS_M
from placekit.types import Location

DEFAULT_THRESHOLD_M = DEFAULT_MATCH_RADIUS_M  # a query is correct within the map's same-place radius
RECALL_AT = (1, 5, 10)


class Sample(NamedTuple):
    """One dataset image: its file, where it was taken and its capture group (or None)."""

    path: Path
    location: Location
    group: Optional[str] = None


@dataclass(frozen=True)
class Dataset:
    database: list[Sample]
    queries: list[Sample]


def load_dataset(folder: str | os.PathLike) -> Dataset:
    """Read a dataset folder in the ``docs/data.md`` layout or the VPR ``@east@north@`` one."""
    folder = Path(folder)
    parts = {}
    for split in ("database", "queries"):
        images = folder / split
        csv_path = folder / f"{split}.csv"
        if csv_path.is_file():
            rows = read_locations_and_groups(csv_path)
            missing = [n for n in rows if not (images / n).is_file()]
            if missing:
                raise CSVFormatError(
                    f"{csv_path}: {len(missing)} listed images are not in {images} (first: {missing[0]})"
                )
            parts[split] = [Sample(images / n, loc, group) for n, (loc, group) in rows.items()]
        else:
            parts[split] = [Sample(p, _vpr_location(p)) for p in list_images(images)]
        if not parts[split]:
            raise CSVFormatError(f"{folder}: no {split} images")
    kinds = {s.location.is_wgs84 for s in parts["database"] + parts["queries"]}
    if len(kinds) != 1:
        raise CSVFormatError(f"{folder}: database and queries mix WGS84 and local coordinates")
    return Dataset(parts["database"], parts["queries"])


def _vpr_location(path: Path) -> Location:
    fields = path.stem.split("@")
    try:
        east, north = float(fields[1]), float(fields[2])
    except (IndexError, ValueError):
        raise CSVFormatError(
            f"{path.name}: no CSV beside the images and no '@east@north@' position in the file name"
        ) from None
    return Location(x=east, y=north)


def evaluate(
    dataset: Dataset,
    model: str = "default",
    descriptor: str = "auto",
    threshold_m: float = DEFAULT_THRESHOLD_M,
    threads: int = 0,
    workdir: str | os.PathLike | None = None,
    progress: bool = False,
    top_k: int = max(RECALL_AT),
    plots_dir: str | os.PathLike | None = None,
    backend: str = "auto",
    local_features: str = "auto",
    negatives: Sequence[str | os.PathLike] = (),
) -> dict:
    """Build a map from the database, localize every query, measure. Returns the report dict
    (keys in the module docstring); with ``plots_dir``, also writes the PNG plots there.
    ``negatives``: image paths of places not in the map, given to ``MapBuilder.add_negative``."""
    from placekit.builder import MapBuilder
    from placekit.localizer import Localizer
    from placekit.options import BuildOptions, LocalizerOptions

    with tempfile.TemporaryDirectory() as tmp:
        map_path = Path(workdir or tmp) / "eval.pkmap"
        builder = MapBuilder(
            BuildOptions(
                model=model,
                descriptor=descriptor,
                match_radius_m=threshold_m,
                threads=threads,
                backend=backend,
                local_features=local_features,
            )
        )
        builder.add_many(((s.path, s.location, s.path.name, s.group) for s in dataset.database), progress=progress)
        for path in negatives:
            builder.add_negative(path)
        map_info = builder.build(map_path)
        map_bytes = map_path.stat().st_size
        queries = dataset.queries
        if progress:
            from tqdm import tqdm

            queries = tqdm(queries, desc="localizing", unit="img")
        options = LocalizerOptions(threads=threads, top_k=top_k, backend=backend)
        with Localizer.open(map_path, options) as localizer:
            results = [localizer.localize(s.path) for s in queries]
    frame, db_xyz, q_xyz = dataset_metric(dataset)
    name_row = {s.path.name: i for i, s in enumerate(dataset.database)}
    ranked = [np.array([name_row[m.name] for m in r.matches], np.int64) for r in results]
    errors = [
        None if r.location is None else float(np.linalg.norm(locations_to_metric([r.location], frame)[0] - t))
        for r, t in zip(results, q_xyz)
    ]
    report = _report(results, ranked, errors, q_xyz, db_xyz, threshold_m, map_bytes, len(dataset.database))
    report.update(_verification_report(results, name_row, q_xyz, db_xyz, threshold_m))
    report.update(_pose_report(results, dataset, errors))
    report["calibration"] = map_info.calibration
    if plots_dir is not None:
        from placekit.tools.plots import write_plots

        report["plots"] = write_plots(plots_dir, report, dataset, results, ranked, errors, q_xyz, db_xyz)
    return report


def _verification_report(results, name_row, q_xyz, db_xyz, threshold_m) -> dict:
    """Recall before verification (matches in similarity order) when verification re-ranked them."""
    if not any(m.inliers is not None for r in results for m in r.matches):
        return {}
    before = [
        np.array([name_row[m.name] for m in sorted(r.matches, key=lambda m: -m.score)], np.int64) for r in results
    ]
    curve = recall_curve(before, q_xyz, db_xyz, threshold_m, max(RECALL_AT))
    return {
        "recall_at_1_before_verification": float(curve[0]),
        "recall_at_5_before_verification": float(curve[4]),
        "recall_at_10_before_verification": float(curve[9]),
    }


POSE_BINS = ((0.25, 2.0), (0.5, 5.0), (5.0, 10.0))


def _pose_report(results, dataset: Dataset, errors) -> dict:
    """Rotation error and the (metres, degrees) shares, when poses came back and the queries
    have ground-truth rotations. A query without a pose counts as a miss in the shares."""
    from placekit.geometry.rotation import rotation_error_deg

    truth = [s.location.rotation for s in dataset.queries]
    if not any(r.pose is not None for r in results) or any(q is None for q in truth):
        return {}
    rot: list[float] = []
    pos: list[float] = []
    for r, q, err in zip(results, truth, errors):
        if r.pose is None:
            rot.append(np.inf)
            pos.append(np.inf)
            continue
        rot.append(rotation_error_deg(r.pose.rotation, q))
        pos.append(err if err is not None else np.inf)
    rot_deg, pos_m = np.array(rot), np.array(pos)
    posed = np.isfinite(rot_deg)
    return {
        "median_rotation_error_deg": float(np.median(rot_deg[posed])),
        "pose_share": float(posed.mean()),
        "pose_within": {f"{m} m, {d} deg": float(np.mean((pos_m <= m) & (rot_deg <= d))) for m, d in POSE_BINS},
    }


def dataset_metric(dataset: Dataset) -> tuple[LocalFrame | None, np.ndarray, np.ndarray]:
    """The dataset's metric frame (ENU at the mean of all its WGS84 locations, or None for local
    ones) and its database (N, 3) and query (M, 3) positions in metres."""
    frame = frame_for([s.location for s in dataset.database + dataset.queries])
    return (
        frame,
        locations_to_metric([s.location for s in dataset.database], frame),
        locations_to_metric([s.location for s in dataset.queries], frame),
    )


def correct_mask(
    ranked: list[np.ndarray], q_xyz: np.ndarray, db_xyz: np.ndarray, threshold_m: float, depth: int
) -> np.ndarray:
    """(Q, depth) bool: is the n-th returned database row within ``threshold_m`` of the query.
    ranked: per query, database rows best first (may be shorter than depth)."""
    mask = np.zeros((len(ranked), depth), bool)
    for i, rows in enumerate(ranked):
        rows = np.asarray(rows[:depth], np.int64)
        if len(rows):
            mask[i, : len(rows)] = np.linalg.norm(db_xyz[rows] - q_xyz[i], axis=1) <= threshold_m
    return mask


def recall_curve(
    ranked: list[np.ndarray], q_xyz: np.ndarray, db_xyz: np.ndarray, threshold_m: float, depth: int
) -> np.ndarray:
    """(depth,) recall@N for N = 1..depth: share of queries with a correct row in the first N.
    Every method in the benchmarks (placekit and its peers) is scored by this function."""
    if not ranked:
        return np.zeros(depth)
    return np.cumsum(correct_mask(ranked, q_xyz, db_xyz, threshold_m, depth), axis=1).astype(bool).mean(0)


def _report(results, ranked, errors, q_xyz, db_xyz, threshold_m, map_bytes, n_database) -> dict:
    n = len(results)
    depth = max(max(RECALL_AT), max((len(r) for r in ranked), default=0))
    curve = recall_curve(ranked, q_xyz, db_xyz, threshold_m, depth)
    statuses = [r.status for r in results]
    found = [e for e in errors if e is not None]
    localized = [e for r, e in zip(results, errors) if r.status == "localized"]
    latency = {}
    for stage in results[0].timings_ms if results else ():
        values = [r.timings_ms[stage] for r in results]
        latency[stage] = {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99))}
    return {
        "recall_at_1": float(curve[0]),
        "recall_at_5": float(curve[4]),
        "recall_at_10": float(curve[9]),
        "median_position_error_m": float(np.median(found)) if found else None,
        "p90_position_error_m": float(np.percentile(found, 90)) if found else None,
        "median_rotation_error_deg": None,
        "localized_precision": float(np.mean(np.array(localized) <= threshold_m)) if localized else None,
        "latency_ms_p50": latency.get("total", {}).get("p50"),
        "latency_ms_p99": latency.get("total", {}).get("p99"),
        "map_bytes_per_place": map_bytes / n_database,
        "n_queries": n,
        "n_database": n_database,
        "recall_at_n": [float(v) for v in curve],
        "status_shares": {s: statuses.count(s) / n for s in ("localized", "ambiguous", "unknown")},
        "latency_ms_by_stage": latency,
        "threshold_m": threshold_m,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
