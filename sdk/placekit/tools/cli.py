"""``placekit``: the command line, mirroring the Python API.

    placekit map build DIR --locations CSV|exif -o MAP [--model NAME] [--descriptor gem|vlad] [--local-features NAME]
                       [--negatives DIR] [--ray auto|local|ADDRESS]
    placekit map info MAP [--json] [--verify]
    placekit localize MAP IMAGE [IMAGE...] [--json]
    placekit eval DATASET [--model NAME] [--descriptor gem|vlad] [--threshold M] [--json OUT] [--plots DIR]
                  [--negatives DIR]
    placekit models [--json]
    placekit doctor [--json]
    placekit demo

Exit codes: 0 success, 1 a placekit error (message on stderr), 2 bad command line.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from placekit.builder import MapBuilder


def _build(args: argparse.Namespace) -> int:
    from placekit.builder import MapBuilder
    from placekit.executors import executor_for
    from placekit.options import BuildOptions

    folder = Path(args.dir)
    options = BuildOptions(
        model=args.model,
        recipe=args.recipe,
        match_radius_m=args.radius,
        embed_model=args.embed_model,
        threads=args.threads,
        backend=args.backend,
        descriptor=args.descriptor,
        local_features=args.local_features,
        max_keypoints=args.max_keypoints,
        local_max_side=args.local_max_side,
        local_detector=args.local_detector,
    )
    with executor_for(args.ray, cpus_per_task=max(1, options.threads)) as executor:
        return _build_with(args, folder, MapBuilder(options, executor=executor))


def _build_with(args: argparse.Namespace, folder: Path, builder: MapBuilder) -> int:
    from placekit.errors import CalibrationWarning
    from placekit.inference.imageio import list_images

    found = builder.add_folder(folder, args.locations, progress=not args.quiet)
    if found.unlisted:
        print(
            f"note: {len(found.unlisted)} image(s) in {folder} have no row in {args.locations} and are skipped "
            f"(first: {found.unlisted[0]})",
            file=sys.stderr,
        )
    if args.negatives:
        for path in list_images(args.negatives):
            builder.add_negative(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)  # printed below, once, without a traceback line
        info = builder.build(args.output, user={"source_dir": str(folder)})
    for message in info.warnings:
        print(f"warning: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps(info.to_dict(), indent=1))
    else:
        print(
            f"wrote {args.output}: {info.places} places, {info.file_bytes:,} bytes "
            f"({info.bytes_per_place} per place), index {info.index['recipe']}"
        )
    return 0


def _info(args: argparse.Namespace) -> int:
    from placekit.mapfile.placemap import PlaceMap

    # plain `map info` describes: structure only; --verify checks every row and every hash
    placemap = PlaceMap.load(args.map, verify=args.verify, check_rows=args.verify)
    try:
        info = placemap.info()
    finally:
        placemap.close()
    if args.json:
        print(json.dumps(info.to_dict(), indent=1))
        return 0
    cal = info.calibration
    lines = [
        f"map          {info.path}",
        f"format       {info.format_version} (written by placekit {info.library_version}, {info.created_utc})",
        f"places       {info.places}   extent {info.extent_m[0]:.1f} x {info.extent_m[1]:.1f} x {info.extent_m[2]:.1f} m",
        f"frame        {_frame_text(info.frame)}",
        f"descriptor   {info.descriptor['kind']} {info.descriptor['dim']}-D, model {info.model['name']} "
        f"({'embedded' if info.model['embedded'] else 'referenced'}, sha256 {info.model['sha256'][:12]}...)",
        f"index        {info.index['recipe']} -> {info.index['dim']}-D, search {info.index['search']}",
        f"decision     unknown below {cal['unknown_threshold']:.3f}, ambiguous within {cal['ambiguity_margin']:.3f}, "
        f"radius {cal['match_radius_m']} m, target precision {cal['target_precision']}",
        f"size         {info.file_bytes:,} bytes ({info.bytes_per_place} per place)",
    ]
    stats = cal.get("stats") or {}
    if stats.get("negatives"):
        lines.insert(
            -1,
            f"negatives    {stats['negatives']} photos of other places at build, "
            f"{stats['negative_rejection']:.0%} of them below the unknown threshold",
        )
    local = info.local
    if local:
        tri = local.get("triangulation") or {}
        lines.append(
            f"local        {local['extractor']}, up to {local['max_keypoints']} keypoints per image, "
            f"{local['places_with_features']} places with features, {tri.get('points', 0):,} 3D points, "
            f"{local['bytes']:,} bytes; verified at >= {cal.get('min_inliers', 0)} inliers"
        )
    if stats.get("precision_at_threshold") is not None:
        lines.append(
            f"calibrated   precision {stats['precision_at_threshold']:.2f} at the threshold on the map's own "
            f"images ({'cross-fitted, ' if stats.get('cross_fitted_folds') else ''}"
            f"{stats.get('threshold_rule', '')})"
        )
    lines += [f"warning      {message}" for message in info.warnings]
    print("\n".join(lines))
    return 0


def _frame_text(frame: dict | None) -> str:
    if frame and frame.get("kind") == "wgs84":
        o = frame["origin"]
        return f"WGS84, local ENU origin at {o['lat']:.6f}, {o['lon']:.6f}, {o.get('alt', 0):.1f} m"
    return "local metric frame"


def _localize(args: argparse.Namespace) -> int:
    from placekit.errors import PlacekitError
    from placekit.localizer import Localizer
    from placekit.options import LocalizerOptions

    options = LocalizerOptions(
        backend=args.backend,
        threads=args.threads,
        top_k=args.top_k,
        model=args.model,
        query_keypoints=args.query_keypoints,
    )
    failures = 0
    with Localizer.open(args.map, options) as loc:
        for image in args.images:
            try:
                result = loc.localize(image).to_dict()
            except PlacekitError as exc:
                failures += 1
                result = {"image": image, "error": type(exc).__name__, "message": str(exc)}
                if not args.json:
                    print(f"{image}: error: {exc}", file=sys.stderr)
                    continue
            result = {"image": image, **result}
            if args.json:
                print(json.dumps(result))
            else:
                print(_result_text(result))
    return 1 if failures else 0


def _result_text(r: dict) -> str:
    loc = r["location"]
    where = "-"
    if loc:
        where = (
            f"lat {loc['lat']:.6f} lon {loc['lon']:.6f}"
            if "lat" in loc
            else f"x {loc['x']:.2f} y {loc['y']:.2f} z {loc.get('z', 0):.2f}"
        )
    best = r["matches"][0]["name"] if r["matches"] else "-"
    unc = f" ± {r['uncertainty_m']:.1f} m" if r["uncertainty_m"] is not None else ""
    pose = ""
    if r.get("pose"):
        c = r["pose"]["center"]
        pose = (
            f" pose centre ({c[0]:.2f}, {c[1]:.2f}, {c[2]:.2f}) q {tuple(round(v, 4) for v in r['pose']['rotation'])}"
        )
    return (
        f"{r['image']}: {r['status']} {where}{unc} confidence {r['confidence']:.2f} "
        f"best {best}{pose} ({r['timings_ms']['total']:.1f} ms)"
    )


def _eval(args: argparse.Namespace) -> int:
    from placekit.inference.imageio import list_images
    from placekit.tools.evaluation import evaluate, load_dataset

    report = evaluate(
        load_dataset(args.dataset),
        model=args.model,
        descriptor=args.descriptor,
        threshold_m=args.threshold,
        threads=args.threads,
        workdir=args.keep_map,
        progress=not args.quiet,
        top_k=args.top_k,
        plots_dir=args.plots,
        backend=args.backend,
        local_features=args.local_features,
        negatives=list_images(args.negatives) if args.negatives else (),
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    fmt = lambda v, unit="": "-" if v is None else f"{v:.3f}{unit}"  # noqa: E731
    shares = report["status_shares"]
    print(
        f"{report['n_queries']} queries against {report['n_database']} map images (correct within {args.threshold} m)\n"
        f"recall@1 {fmt(report['recall_at_1'])}  @5 {fmt(report['recall_at_5'])}  @10 {fmt(report['recall_at_10'])}\n"
        f"position error median {fmt(report['median_position_error_m'], ' m')}, p90 {fmt(report['p90_position_error_m'], ' m')}\n"
        f"decisions: localized {shares['localized']:.2f}, ambiguous {shares['ambiguous']:.2f}, unknown "
        f"{shares['unknown']:.2f}; precision of localized {fmt(report['localized_precision'])}\n"
        f"latency p50 {fmt(report['latency_ms_p50'], ' ms')}, p99 {fmt(report['latency_ms_p99'], ' ms')}; "
        f"map {report['map_bytes_per_place']:.0f} bytes per place"
    )
    if report.get("plots"):
        print("plots: " + ", ".join(report["plots"]))
    return 0


def _models(args: argparse.Namespace) -> int:
    from placekit.inference.catalog import list_models

    entries = list_models()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": e.name,
                        "kind": e.kind,
                        "format": e.format,
                        "precision": e.precision,
                        "path": str(e.path),
                        "card": str(e.card),
                        "sha256": e.sha256,
                    }
                    for e in entries
                ],
                indent=1,
            )
        )
    else:
        for e in entries:
            print(f"{e.name:<28}{e.kind:<8}{e.format:<8}{e.precision:<6}{e.path}")
        if not entries:
            print("no models installed")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from placekit.tools.doctor import render, report

    r = report()
    print(json.dumps(r, indent=1) if args.json else render(r))
    return 0 if r["recommended"]["backend"] else 1


def _demo(args: argparse.Namespace) -> int:
    from placekit.tools.demo import run_demo

    summary = run_demo(args.workdir, model=args.model, threads=args.threads)
    return 0 if summary["held_out_queries"] else 1


def _keypoints_or_all(value: str) -> int | None:
    """argparse type of ``--query-keypoints``: a number of keypoints, or None for ``all``."""
    if value == "all":
        return None
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of keypoints or 'all', got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    from placekit.options import (
        BACKENDS,
        DEFAULT_LOCAL_MODEL,
        DESCRIPTORS,
        LOCAL_DETECTORS,
        BuildOptions,
        LocalizerOptions,
    )
    from placekit.tools.evaluation import DEFAULT_THRESHOLD_M, RECALL_AT

    build_defaults, localize_defaults = BuildOptions(), LocalizerOptions()
    p = argparse.ArgumentParser(prog="placekit", description="On-device visual localization.")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("map", help="build or inspect map files").add_subparsers(dest="map_command", required=True)
    b = m.add_parser("build", help="build a map from a folder of images")
    b.add_argument("dir", help="folder of map images")
    b.add_argument("--locations", required=True, help="CSV (name,x,y[,z] or name,lat,lon[,alt]) or 'exif'")
    b.add_argument("-o", "--output", required=True, help="map file to write (.pkmap)")
    b.add_argument("--model", default=build_defaults.model, help="model name (see 'placekit models') or path")
    b.add_argument(
        "--recipe",
        default=build_defaults.recipe,
        help="index recipe in placekit's recipe language (docs/map-format.md), e.g. 'PCAW256,Flat' (default auto)",
    )
    b.add_argument(
        "--radius",
        type=float,
        default=build_defaults.match_radius_m,
        help=f"same-place radius in metres (default {build_defaults.match_radius_m:g})",
    )
    b.add_argument("--embed-model", action="store_true", help="store the model inside the map")
    b.add_argument(
        "--descriptor",
        default=build_defaults.descriptor,
        choices=DESCRIPTORS,
        help="global descriptor: gem (the global model), vlad (of the local features) or auto (gem)",
    )
    b.add_argument(
        "--local-features",
        default=build_defaults.local_features,
        help=f"auto ({DEFAULT_LOCAL_MODEL} for images with a camera in the CSV: qw..qz and fx..cy), none, "
        "rootsift or a local model: stored for verification; 3D points from posed images",
    )
    b.add_argument(
        "--max-keypoints",
        type=int,
        default=build_defaults.max_keypoints,
        help=f"local features stored per image (default {build_defaults.max_keypoints})",
    )
    b.add_argument(
        "--local-max-side",
        type=int,
        default=build_defaults.local_max_side,
        help=f"long side (pixels) local features are found at (default {build_defaults.local_max_side})",
    )
    b.add_argument(
        "--local-detector",
        default=build_defaults.local_detector,
        choices=LOCAL_DETECTORS,
        help=f"keypoint detector of the local features (default {build_defaults.local_detector})",
    )
    b.add_argument(
        "--negatives",
        default=None,
        metavar="DIR",
        help="photos of places NOT in the map (not stored): calibration keeps them out",
    )
    b.add_argument("--threads", type=int, default=build_defaults.threads)
    b.add_argument("--backend", default=build_defaults.backend, choices=BACKENDS)
    b.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="build on Ray (pip install 'placekit[distributed]'): 'auto' joins the running cluster or starts a "
        "local one, 'local' starts a local one, or a cluster address (ray://head:10001); same map as without",
    )
    b.add_argument("--json", action="store_true", help="print the map info as JSON")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_build)
    i = m.add_parser("info", help="describe a map file")
    i.add_argument("map")
    i.add_argument("--json", action="store_true")
    i.add_argument(
        "--verify",
        action="store_true",
        help="also check every place's row and every member's sha256 (reads the whole file; "
        "the structure is always checked)",
    )
    i.set_defaults(func=_info)

    lo = sub.add_parser("localize", help="localize images against a map")
    lo.add_argument("map")
    lo.add_argument("images", nargs="+", metavar="IMAGE")
    lo.add_argument("--json", action="store_true", help="one JSON object per image")
    lo.add_argument("--top-k", type=int, default=localize_defaults.top_k)
    lo.add_argument("--threads", type=int, default=localize_defaults.threads)
    lo.add_argument("--backend", default=localize_defaults.backend, choices=BACKENDS)
    lo.add_argument("--model", default=None, help="model path/name to use instead of the map's")
    lo.add_argument(
        "--query-keypoints",
        default=localize_defaults.query_keypoints,
        type=_keypoints_or_all,
        help=f"local features per image for verification, at most the map's per image, or 'all' "
        f"(default {localize_defaults.query_keypoints})",
    )
    lo.set_defaults(func=_localize)

    ev = sub.add_parser("eval", help="build a map from DATASET/database, localize DATASET/queries, report metrics")
    ev.add_argument("dataset", help="folder with database/, queries/ and their CSVs (or @east@north@ file names)")
    ev.add_argument("--model", default=build_defaults.model, help="model name (see 'placekit models') or path")
    ev.add_argument("--descriptor", default=build_defaults.descriptor, choices=DESCRIPTORS)
    ev.add_argument(
        "--local-features", default=build_defaults.local_features, help="auto, none, rootsift or a local model name"
    )
    ev.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD_M,
        help=f"correct within this many metres (default {DEFAULT_THRESHOLD_M:g})",
    )
    ev.add_argument("--json", default=None, metavar="OUT", help="write the full report as JSON")
    ev.add_argument("--threads", type=int, default=build_defaults.threads)
    ev.add_argument("--keep-map", default=None, metavar="DIR", help="keep the built map in DIR")
    ev.add_argument("--plots", default=None, metavar="DIR", help="write PNG plots into DIR (needs matplotlib)")
    ev.add_argument(
        "--top-k", type=int, default=max(RECALL_AT), help="matches returned per query; recall@N up to N=top-k"
    )
    ev.add_argument("--backend", default=build_defaults.backend, choices=BACKENDS)
    ev.add_argument(
        "--negatives",
        default=None,
        metavar="DIR",
        help="photos of places NOT in the map, for its calibration (as in 'map build')",
    )
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=_eval)

    mo = sub.add_parser("models", help="list shipped models")
    mo.add_argument("--json", action="store_true")
    mo.set_defaults(func=_models)

    dr = sub.add_parser("doctor", help="what this device offers and which configuration placekit will use")
    dr.add_argument("--json", action="store_true")
    dr.set_defaults(func=_doctor)

    d = sub.add_parser("demo", help="render a street, build a map, localize held-out views")
    d.add_argument("--workdir", default=None, help="keep the rendered images and map here")
    d.add_argument("--model", default=build_defaults.model)
    d.add_argument("--threads", type=int, default=build_defaults.threads)
    d.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    from placekit.errors import PlacekitError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PlacekitError as exc:
        print(f"placekit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
