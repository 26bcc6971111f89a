"""``placekit eval``: build a map from a dataset's database images, localize every query
through the public ``Localizer`` and measure accuracy, decisions, speed and size.

A dataset is a folder (DESIGN section 7): ``database/`` + ``database.csv`` and ``queries/`` +
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
from typing import Optional

import numpy as np

from .datasets import read_locations_csv
from .errors import CSVFormatError
from .geo import LocalFrame
from .imageio import list_images
from .types import Location

DEFAULT_THRESHOLD_M = 25.0
RECALL_AT = (1, 5, 10)


@dataclass(frozen=True)
class Dataset:
    database: list[tuple[Path, Location]]
    queries: list[tuple[Path, Location]]


def load_dataset(folder: str | os.PathLike) -> Dataset:
    """Read a dataset folder in the DESIGN section 7 layout or the VPR ``@east@north@`` one."""
    folder = Path(folder)
    parts = {}
    for split in ("database", "queries"):
        images = folder / split
        csv_path = folder / f"{split}.csv"
        if csv_path.is_file():
            locations = read_locations_csv(csv_path)
            missing = [n for n in locations if not (images / n).is_file()]
            if missing:
                raise CSVFormatError(f"{csv_path}: {len(missing)} listed images are not in {images} (first: {missing[0]})")
            parts[split] = [(images / n, loc) for n, loc in locations.items()]
        else:
            parts[split] = [(p, _vpr_location(p)) for p in list_images(images)]
        if not parts[split]:
            raise CSVFormatError(f"{folder}: no {split} images")
    kinds = {loc.is_wgs84 for _, loc in parts["database"] + parts["queries"]}
    if len(kinds) != 1:
        raise CSVFormatError(f"{folder}: database and queries mix WGS84 and local coordinates")
    return Dataset(parts["database"], parts["queries"])


def _vpr_location(path: Path) -> Location:
    fields = path.stem.split("@")
    try:
        east, north = float(fields[1]), float(fields[2])
    except (IndexError, ValueError):
        raise CSVFormatError(f"{path.name}: no CSV beside the images and no '@east@north@' position in the "
                             "file name") from None
    return Location(x=east, y=north)


def _metric(locations: list[Location], frame: Optional[LocalFrame]) -> np.ndarray:
    if frame is None:
        return np.array([[loc.x, loc.y, loc.z or 0.0] for loc in locations], float)
    return frame.to_local([loc.lat for loc in locations], [loc.lon for loc in locations],
                          [loc.alt or 0.0 for loc in locations])


def evaluate(dataset: Dataset, model: str = "default", descriptor: str = "gem",
             threshold_m: float = DEFAULT_THRESHOLD_M, threads: int = 0, workdir: str | os.PathLike | None = None,
             progress: bool = False) -> dict:
    """Build, localize, measure. Returns the report dict (keys in the module docstring)."""
    from .builder import MapBuilder
    from .localizer import Localizer
    from .options import BuildOptions, LocalizerOptions

    with tempfile.TemporaryDirectory() as tmp:
        map_path = Path(workdir or tmp) / "eval.pkmap"
        builder = MapBuilder(BuildOptions(model=model, descriptor=descriptor, match_radius_m=threshold_m,
                                          threads=threads))
        builder.add_many(((p, loc, p.name) for p, loc in dataset.database), progress=progress)
        builder.build(map_path)
        map_bytes = map_path.stat().st_size
        all_locs = [loc for _, loc in dataset.database + dataset.queries]
        frame = None
        if all_locs[0].is_wgs84:
            frame = LocalFrame(float(np.mean([x.lat for x in all_locs])), float(np.mean([x.lon for x in all_locs])))
        db_xyz = _metric([loc for _, loc in dataset.database], frame)
        name_row = {p.name: i for i, (p, _) in enumerate(dataset.database)}
        queries = dataset.queries
        if progress:
            from tqdm import tqdm
            queries = tqdm(queries, desc="localizing", unit="img")
        results, truth = [], []
        with Localizer.open(map_path, LocalizerOptions(threads=threads, top_k=max(RECALL_AT))) as localizer:
            for path, where in queries:
                results.append(localizer.localize(path))
                truth.append(where)
    q_xyz = _metric(truth, frame)
    return _report(results, q_xyz, db_xyz, name_row, frame, threshold_m, map_bytes, len(dataset.database))


def _report(results, q_xyz, db_xyz, name_row, frame, threshold_m, map_bytes, n_database) -> dict:
    n = len(results)
    hits = {k: 0 for k in RECALL_AT}
    errors, statuses, correct_localized = [], [], 0
    for r, truth in zip(results, q_xyz):
        rows = [name_row[m.name] for m in r.matches]
        within = [bool(np.linalg.norm(db_xyz[row] - truth) <= threshold_m) for row in rows]
        for k in RECALL_AT:
            hits[k] += any(within[:k])
        statuses.append(r.status)
        if r.location is not None:
            err = float(np.linalg.norm(_metric([r.location], frame)[0] - truth))
            errors.append(err)
            if r.status == "localized" and err <= threshold_m:
                correct_localized += 1
    latency = {}
    for stage in results[0].timings_ms if results else ():
        values = [r.timings_ms[stage] for r in results]
        latency[stage] = {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99))}
    n_localized = statuses.count("localized")
    return {
        "recall_at_1": hits[1] / n, "recall_at_5": hits[5] / n, "recall_at_10": hits[10] / n,
        "median_position_error_m": float(np.median(errors)) if errors else None,
        "p90_position_error_m": float(np.percentile(errors, 90)) if errors else None,
        "median_rotation_error_deg": None,
        "localized_precision": correct_localized / n_localized if n_localized else None,
        "latency_ms_p50": latency.get("total", {}).get("p50"),
        "latency_ms_p99": latency.get("total", {}).get("p99"),
        "map_bytes_per_place": map_bytes / n_database,
        "n_queries": n, "n_database": n_database,
        "status_shares": {s: statuses.count(s) / n for s in ("localized", "ambiguous", "unknown")},
        "latency_ms_by_stage": latency,
        "threshold_m": threshold_m,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
