"""The generalization suite: answer quality on places nobody tuned for, one command.

    python benchmarks/generalization.py --out benchmarks/results/generalization.json
    python benchmarks/generalization.py --smoke          # generated streets, no shared/data (CI)

Every query goes through the public ``MapBuilder`` / ``Localizer``. For each retrieval set and
each configuration, in one run:

* in-map queries: recall@1/5 (ranking of ``Localization.matches``), the share answered
  ``localized`` / ``unknown``, the precision of ``localized`` (its top place within the set's
  radius), p50 latency of ``localize`` and map bytes per place;
* the **foreign-photo matrix**: the same map queried with photos of every *other* set (and the
  unlabelled landmark pool); the share answered ``unknown`` per source set;
* **calibration honesty**: the precision ``map info`` claims at the threshold
  (``calibration.stats.precision_at_threshold``, in-map and out-of-map answers weighted equally)
  next to the same quantity measured: the precision of ``localized`` with the in-map queries and
  the foreign photos weighted equally. The plain in-map precision of ``localized`` is reported
  as well.

Peers in the same run (retrieval only, exhaustive search): the raw ImageNet GeM 1280-D float
(the floor every default must beat) and RootSIFT-VLAD (``peers.py``). Differences in per-query
recall@1 against the defaults are given as paired bootstrap 95% intervals
(``placekit_export.retrieval_eval.paired_bootstrap``).

Sets (``shared/data``, none of them used to choose a default or fit anything shipped):
``landmarks_val`` (110 outdoor landmarks, evaluation only), ``ie-tower-heldout`` (the held-out
"highrise" floors, split by clip: an area's last clip queries the others), ``strecha-heldout``
(entry-P10, Herz-Jesus-P25; even views map, odd views query), ``kitti-seq1`` / ``kitti-seq2``
and their ``-dusk`` copies (queries through ``dusk_lens``). Foreign photos are at most
``--foreign-per-set`` evenly spaced images of each other set (a set's dusk twin shows the same
places and is not foreign to it) plus every ``pool`` photo.

Exits with a message, not an error, when ``shared/data`` is absent (use ``--smoke``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

from placekit.tools.evaluation import Dataset, correct_mask, dataset_metric, load_dataset  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DEFAULT_FOREIGN_PER_SET = 40
DEFAULT_CONFIG = "default"
FLOOR_PEER = "peer: ImageNet GeM 1280-D float, exact"


@dataclass(frozen=True)
class SuiteSet:
    """One retrieval set: its dataset and the radius within which a place is correct."""

    name: str
    dataset: Dataset
    radius_m: float

    @property
    def family(self) -> str:
        """Sets of one family show the same places (a set and its dusk copy)."""
        return self.name.removesuffix("-dusk")

    def photos(self) -> list[Path]:
        return [s.path for s in self.dataset.database + self.dataset.queries]


@dataclass(frozen=True)
class Config:
    """A placekit configuration: ``BuildOptions`` and ``LocalizerOptions`` fields."""

    name: str
    build: dict = field(default_factory=dict)
    localize: dict = field(default_factory=dict)
    foreign: bool = True      # also run the foreign-photo matrix


CONFIGS = {
    DEFAULT_CONFIG: Config(DEFAULT_CONFIG),
    "gem-imagenet, raw exact index": Config("gem-imagenet, raw exact index",
                                            {"descriptor": "gem", "local_features": "none",
                                             "model": "gem-imagenet-fp32", "recipe": "Flat"}),
    "trained gem": Config("trained gem", {"model": "gem", "descriptor": "gem", "local_features": "none"}),
    "gem + hardnet verification": Config("gem + hardnet verification",
                                         {"descriptor": "gem", "local_features": "hardnet-int8", "local_max_side": 640},
                                         {"query_keypoints": None}, foreign=False),
    "gem + hardnet verification, 256 query keypoints": Config(
        "gem + hardnet verification, 256 query keypoints",
        {"descriptor": "gem", "local_features": "hardnet-int8", "local_max_side": 640}, {"query_keypoints": 256},
        foreign=False),
    "gem + hardnet verification, 512 keypoints at 480 px": Config(
        "gem + hardnet verification, 512 keypoints at 480 px",
        {"descriptor": "gem", "local_features": "hardnet-int8", "max_keypoints": 512, "local_max_side": 480},
        foreign=False),
    "gem + hardnet-c16 verification, 512 keypoints at 480 px": Config(
        "gem + hardnet-c16 verification, 512 keypoints at 480 px",
        {"descriptor": "gem", "local_features": "hardnet-c16-int8", "max_keypoints": 512, "local_max_side": 480},
        foreign=False),
    "gem + hardnet-c16 verification": Config("gem + hardnet-c16 verification",
                                             {"descriptor": "gem", "local_features": "hardnet-c16-int8",
                                              "local_max_side": 640}, {"query_keypoints": None}, foreign=False),
    "gem + hardnet-c16 verification, 1024 keypoints at 480 px": Config(
        "gem + hardnet-c16 verification, 1024 keypoints at 480 px",
        {"descriptor": "gem", "local_features": "hardnet-c16-int8", "local_max_side": 480}, {"query_keypoints": None},
        foreign=False),
    "gem + hardnet-c16 verification, 1024 keypoints at 480 px, 512 query keypoints": Config(
        "gem + hardnet-c16 verification, 1024 keypoints at 480 px, 512 query keypoints",
        {"descriptor": "gem", "local_features": "hardnet-c16-int8", "local_max_side": 480},
        {"query_keypoints": 512}, foreign=False),
    "gem + hardnet-c16 verification, 512 query keypoints": Config(
        "gem + hardnet-c16 verification, 512 query keypoints",
        {"descriptor": "gem", "local_features": "hardnet-c16-int8", "local_max_side": 640},
        {"query_keypoints": 512}, foreign=False),
    "gem + rootsift verification, 512 keypoints at 480 px": Config(
        "gem + rootsift verification, 512 keypoints at 480 px",
        {"descriptor": "gem", "local_features": "rootsift", "max_keypoints": 512, "local_max_side": 480},
        foreign=False),
    "hardnet-vlad, shipped vocabulary (no verification)": Config(
        "hardnet-vlad, shipped vocabulary (no verification)",
        {"descriptor": "vlad", "local_features": "hardnet-int8", "vlad_vocabulary": "shipped",
         "vlad_whitening": False}, {"verify": False},
        foreign=False),
    "hardnet-vlad, shipped vocabulary and whitening (no verification)": Config(
        "hardnet-vlad, shipped vocabulary and whitening (no verification)",
        {"descriptor": "vlad", "local_features": "hardnet-int8", "vlad_vocabulary": "shipped", "vlad_whitening": True},
        {"verify": False}, foreign=False),
    "hardnet-vlad (no verification)": Config("hardnet-vlad (no verification)",
                                             {"descriptor": "vlad", "local_features": "hardnet-int8"},
                                             {"verify": False}, foreign=False),
}
SMOKE_CONFIGS = (DEFAULT_CONFIG, "gem-imagenet, raw exact index")
QUICK_CONFIGS = (DEFAULT_CONFIG, "gem-imagenet, raw exact index", "trained gem")


# ---------------------------------------------------------------- sets

def real_sets(root: Path) -> list[SuiteSet]:
    """The suite's sets laid out under ``root`` from ``shared/data`` (links, dusk copies written)."""
    import real_data_suite as rds
    from placekit_export.retrieval_eval import HELDOUT_FLOOR_RANGE, HELDOUT_STRECHA

    out = [SuiteSet("landmarks_val", load_dataset(DATA / "landmarks_val"), 25.0)]
    layouts = {
        "ie-tower-heldout": lambda r: rds.ie_tower(r, floor_range=HELDOUT_FLOOR_RANGE),
        "strecha-heldout": lambda r: rds.strecha(r, scenes=HELDOUT_STRECHA),
        "kitti-seq1": lambda r: rds.kitti(r, "seq1"),
        "kitti-seq2": lambda r: rds.kitti(r, "seq2"),
        "kitti-seq1-dusk": lambda r: rds.kitti(r, "seq1", dusk=True),
        "kitti-seq2-dusk": lambda r: rds.kitti(r, "seq2", dusk=True),
    }
    for name, layout in layouts.items():
        radius = layout(root / name)
        out.append(SuiteSet(name, load_dataset(root / name), radius))
    return out


def pool_photos() -> list[Path]:
    return sorted(p for p in DATA.glob("pool/*/*") if p.suffix.lower() in IMAGE_SUFFIXES)


def smoke_sets(root: Path) -> list[SuiteSet]:
    """Three generated streets (``placekit.tools.demo``): small, offline, for CI."""
    from placekit.tools.demo import write_dataset

    return [SuiteSet(f"street-{seed}", load_dataset(write_dataset(root / f"street-{seed}", n_database=20,
                                                                  n_queries=6, n_foreign=0, seed=seed)), 25.0)
            for seed in (11, 23, 37)]


def foreign_photos(target: SuiteSet, sets: list[SuiteSet], pool: list[Path], per_set: int) -> dict[str, list[Path]]:
    """Source name -> photos of places not in ``target``'s map."""
    out = {}
    for other in sets:
        if other.family == target.family or other.name.endswith("-dusk"):
            continue
        photos = other.photos()
        pick = np.linspace(0, len(photos) - 1, min(per_set, len(photos))).round().astype(int)
        out[other.name] = [photos[i] for i in np.unique(pick)]
    if pool:
        out["pool"] = pool
    return out


# ---------------------------------------------------------------- runs

def _truth(sset: SuiteSet) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    _, db_xyz, q_xyz = dataset_metric(sset.dataset)
    return q_xyz, db_xyz, {s.path.name: i for i, s in enumerate(sset.dataset.database)}


def _build_options(config: Config, sset: SuiteSet, threads: int):
    from placekit.options import BuildOptions

    return BuildOptions(match_radius_m=sset.radius_m, threads=threads, **config.build)


def run_config(sset: SuiteSet, config: Config, foreign: dict[str, list[Path]], threads: int, work: Path) -> dict:
    """Build the set's map with ``config``, localize its queries and (``config.foreign``) the
    foreign photos. Per-query arrays are kept under ``"per_query"`` for the bootstrap."""
    from placekit.builder import MapBuilder
    from placekit.localizer import Localizer
    from placekit.options import LocalizerOptions

    q_xyz, db_xyz, row_of = _truth(sset)
    builder = MapBuilder(_build_options(config, sset, threads))
    t = time.perf_counter()
    builder.add_many((s.path, s.location, s.path.name, s.group) for s in sset.dataset.database)
    map_path = work / f"{sset.name}.pkmap"
    info = builder.build(map_path)
    build_s = time.perf_counter() - t
    options = LocalizerOptions(threads=threads, top_k=5, **config.localize)
    with Localizer.open(map_path, options) as localizer:
        results = [localizer.localize(s.path) for s in sset.dataset.queries]
        foreign_status = {src: [localizer.localize(p).status for p in paths]
                          for src, paths in (foreign.items() if config.foreign else ())}
    ranked = [np.array([row_of[m.name] for m in r.matches], np.int64) for r in results]
    hits = correct_mask(ranked, q_xyz, db_xyz, sset.radius_m, 5)
    status = np.array([r.status for r in results])
    return _summary(info, map_path.stat().st_size, build_s, hits, status, results, foreign_status)


def _summary(info: dict, map_bytes: int, build_s: float, hits: np.ndarray, status: np.ndarray, results: list,
             foreign_status: dict[str, list[str]]) -> dict:
    localized = status == "localized"
    correct_loc = localized & hits[:, 0]
    stats = info.calibration["stats"]
    row = {
        "recall_at_1": float(hits[:, 0].mean()),
        "recall_at_5": float(hits.any(1).mean()),
        "localized_share": float(localized.mean()),
        "unknown_share": float((status == "unknown").mean()),
        "localized_precision": float(correct_loc.sum() / localized.sum()) if localized.any() else None,
        "latency_ms_p50": float(np.median([r.timings_ms["total"] for r in results])),
        "bytes_per_place": map_bytes / info.places,
        "build_s": build_s,
        "recipe": info.index["recipe"],
        "descriptor": info.descriptor["kind"],
        "claimed_precision": stats.get("precision_at_threshold"),
        "threshold_rule": stats.get("threshold_rule"),
        "warnings": info.warnings,
        "n_queries": int(len(status)),
        "per_query": {"hit1": hits[:, 0].astype(int).tolist()},
    }
    if foreign_status:
        shares = {src: float(np.mean([s == "unknown" for s in st])) for src, st in foreign_status.items()}
        all_status = np.array([s for st in foreign_status.values() for s in st])
        foreign_loc = all_status == "localized"
        row["foreign_unknown"] = shares
        row["foreign_unknown_all"] = float((all_status == "unknown").mean())
        row["foreign_localized_all"] = float(foreign_loc.mean())
        row["measured_precision"] = _balanced_precision(correct_loc, localized, foreign_loc)
        row["measured_precision_interval"] = _precision_interval(correct_loc, localized, foreign_loc)
    return row


def _balanced_precision(correct: np.ndarray, localized: np.ndarray, foreign_localized: np.ndarray) -> float | None:
    """Precision of ``localized`` with in-map queries and foreign photos weighted equally (the
    prior calibration assumes): correct share / (in-map localized share + foreign localized share)."""
    denominator = localized.mean() + foreign_localized.mean()
    return float(correct.mean() / denominator) if denominator else None


def _precision_interval(correct: np.ndarray, localized: np.ndarray, foreign_localized: np.ndarray,
                        n: int = 2000, seed: int = 0) -> list[float] | None:
    """95% bootstrap interval of ``_balanced_precision`` (queries and foreign photos resampled)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        q = rng.integers(0, len(correct), len(correct))
        f = rng.integers(0, len(foreign_localized), len(foreign_localized))
        v = _balanced_precision(correct[q], localized[q], foreign_localized[f])
        if v is not None:
            values.append(v)
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if values else None


def run_peer(sset: SuiteSet, peer) -> dict:
    import peers

    q_xyz, db_xyz, _ = _truth(sset)
    run = peers.run_peer(peer, [s.path for s in sset.dataset.database], [s.path for s in sset.dataset.queries], 5)
    hits = correct_mask(run["ranked"], q_xyz, db_xyz, sset.radius_m, 5)
    return {"recall_at_1": float(hits[:, 0].mean()), "recall_at_5": float(hits.any(1).mean()),
            "latency_ms_p50": run["latency_ms_p50"], "bytes_per_place": run["bytes_per_place"],
            "n_queries": int(len(hits)), "per_query": {"hit1": hits[:, 0].astype(int).tolist()}}


def make_peers(threads: int, pool: list[Path]) -> list:
    import peers
    from placekit.inference.imageio import read_image

    out = [peers.FloatGem(threads), peers.RootSiftVlad()]
    out[0].name = FLOOR_PEER
    out[1].name = "peer: RootSIFT-VLAD 8192-D float, exact"
    images = [read_image(p) for p in pool]
    for peer in out:
        peer.fit(images)
    return out


def intervals(rows: dict[str, dict], reference: str) -> dict[str, dict]:
    """Paired bootstrap of recall@1, each method minus ``reference`` (same queries)."""
    from placekit_export.retrieval_eval import paired_bootstrap

    base = np.array(rows[reference]["per_query"]["hit1"])
    return {name: paired_bootstrap(base, np.array(row["per_query"]["hit1"]))
            for name, row in rows.items() if name != reference}


def run_suite(sets: list[SuiteSet], configs: list[Config], peer_list: list, pool: list[Path], threads: int,
              per_set: int, previous: dict | None = None) -> dict:
    """Every configuration and peer on every set. Returns {"sets": {set: {method: row}},
    "intervals_vs_floor" / "intervals_vs_default": {set: {method: {mean, low, high}}}} (recall@1
    minus the floor peer, and minus the default). ``previous``: an earlier result whose rows
    the ones run now replace (the others are kept, with their per-query hits)."""
    out: dict = {"sets": {name: dict(rows) for name, rows in (previous or {}).get("sets", {}).items()},
                 "foreign_sources": dict((previous or {}).get("foreign_sources", {}))}
    with tempfile.TemporaryDirectory() as tmp:
        for sset in sets:
            foreign = foreign_photos(sset, sets, pool, per_set)
            rows = out["sets"].setdefault(sset.name, {})
            for config in configs:
                work = Path(tmp) / config.name.replace(" ", "_").replace(",", "").replace("/", "_")
                work.mkdir(exist_ok=True)
                rows[config.name] = run_config(sset, config, foreign, threads, work)
                _print(sset.name, config.name, rows[config.name])
            for peer in peer_list:
                rows[peer.name] = run_peer(sset, peer)
                _print(sset.name, peer.name, rows[peer.name])
            out["foreign_sources"][sset.name] = {k: len(v) for k, v in foreign.items()}
    out["intervals_vs_floor"] = {name: intervals(rows, FLOOR_PEER) for name, rows in out["sets"].items()
                                 if FLOOR_PEER in rows}
    out["intervals_vs_default"] = {name: intervals(rows, DEFAULT_CONFIG) for name, rows in out["sets"].items()
                                   if DEFAULT_CONFIG in rows}
    return out


def _print(set_name: str, method: str, row: dict) -> None:
    extra = ""
    if "unknown_share" in row:
        extra = (f" loc {row['localized_share']:.2f} prec {_f(row['localized_precision'])} "
                 f"claim {_f(row['claimed_precision'])} meas {_f(row.get('measured_precision'))} "
                 f"foreign-unknown {_f(row.get('foreign_unknown_all'))}")
    print(f"{set_name:<17} {method[:42]:<42} r@1 {row['recall_at_1']:.3f} r@5 {row['recall_at_5']:.3f} "
          f"{row['latency_ms_p50']:.1f} ms {row['bytes_per_place']:.0f} B{extra}", flush=True)


def _f(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def main(argv: list[str] | None = None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="generated streets instead of shared/data (CI)")
    p.add_argument("--configs", nargs="*", default=None,
                   help=f"configuration names (default: all; quick: {list(QUICK_CONFIGS)})")
    p.add_argument("--quick", action="store_true", help="only the GeM configurations (no local features)")
    p.add_argument("--sets", nargs="*", default=None, help="only these sets")
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--foreign-per-set", type=int, default=DEFAULT_FOREIGN_PER_SET)
    p.add_argument("--update", action="store_true",
                   help="rerun only --configs and replace their rows in the existing --out file (peers kept)")
    args = p.parse_args(argv)
    names = args.configs or list(SMOKE_CONFIGS if args.smoke else QUICK_CONFIGS if args.quick else CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        p.error(f"unknown configurations {unknown}; known: {list(CONFIGS)}")
    configs = [CONFIGS[n] for n in names]
    if not args.smoke and not DATA.is_dir():
        print(f"generalization suite skipped: {DATA} is not present (run with --smoke for generated data)")
        return None
    previous = None
    if args.update:
        if args.out is None or not args.out.is_file():
            p.error("--update needs an existing --out file")
        previous = json.loads(args.out.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        sets = smoke_sets(Path(tmp)) if args.smoke else real_sets(Path(tmp))
        if args.sets:
            sets = [s for s in sets if s.name in args.sets]
        pool = [] if args.smoke else pool_photos()
        peer_list = [] if (args.no_peers or args.smoke or args.update) else make_peers(args.threads, pool)
        result = run_suite(sets, configs, peer_list, pool, args.threads, args.foreign_per_set, previous)
    result.update(threads=args.threads, smoke=args.smoke, foreign_per_set=args.foreign_per_set)
    if previous is not None:
        result["updated"] = previous.get("updated", []) + [{"configs": names, "command": "python " + " ".join(sys.argv)}]
        result["command"] = previous.get("command")
    return save(args.out, result)


if __name__ == "__main__":
    main()
