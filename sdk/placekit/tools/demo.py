"""``placekit demo``: build a map of a street rendered here, localize held-out views of it
and views of another street (which must come back ``unknown``), and print the results.

The street is a long facade strip: buildings of random width with their own colours, window
grids, doors, signs with text and ornaments. A camera view at position ``s`` (0..1 along the
street) is a perspective crop of the strip with random zoom, yaw and lighting changes.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

STRIP_HEIGHT = 520
METRES = 300.0  # street length
PX_PER_M = 30.0
VIEW_W, VIEW_H = 640, 480
ORIGIN = (55.7047, 13.1910)  # the street runs east from here
DEMO_NEGATIVES = 12  # views of a third street given to the map builder as negatives
DEMO_VISITS = 2  # the map is captured in two visits (capture groups), as maps should be
WORDS = (
    "CAFE",
    "BANK",
    "HOTEL",
    "BOOKS",
    "PHARMACY",
    "BAKERY",
    "TAXI",
    "MUSEUM",
    "BAR",
    "SHOES",
    "FLOWERS",
    "POST",
    "PIZZA",
    "MARKET",
    "CINEMA",
    "DENTIST",
    "GYM",
    "TOYS",
)


@dataclass(frozen=True)
class World:
    strip: np.ndarray  # (STRIP_HEIGHT, W, 3) uint8 BGR
    seed: int


def render_world(seed: int) -> World:
    rng = np.random.default_rng(seed)
    width = int(METRES * PX_PER_M) + VIEW_W * 2
    strip = np.zeros((STRIP_HEIGHT, width, 3), np.uint8)
    sky = np.linspace(255, 170, 120)[:, None, None] * np.array([1.0, 0.85, 0.6])[None, None, :]
    strip[:120] = sky.astype(np.uint8)
    strip[440:] = (90, 90, 95)
    x = 0
    while x < width:
        w = int(rng.integers(180, 520))
        _building(strip, x, min(x + w, width), rng)
        x += w
    return World(strip, seed)


def _building(strip: np.ndarray, x0: int, x1: int, rng: np.random.Generator) -> None:
    top = int(rng.integers(30, 140))
    color = tuple(int(c) for c in rng.integers(40, 230, 3))
    cv2.rectangle(strip, (x0, top), (x1, 440), color, -1)
    win = tuple(int(c) for c in rng.integers(0, 255, 3))
    ww, wh = int(rng.integers(18, 50)), int(rng.integers(22, 60))
    gx, gy = ww + int(rng.integers(10, 40)), wh + int(rng.integers(15, 40))
    shape = int(rng.integers(0, 3))
    for yy in range(top + 20, 360, gy):
        for xx in range(x0 + 12, x1 - ww - 8, gx):
            if shape == 0:
                cv2.rectangle(strip, (xx, yy), (xx + ww, yy + wh), win, -1)
            elif shape == 1:
                cv2.ellipse(strip, (xx + ww // 2, yy + wh // 2), (ww // 2, wh // 2), 0, 0, 360, win, -1)
            else:
                cv2.rectangle(strip, (xx, yy), (xx + ww, yy + wh), win, 3)
    door_x = int(rng.integers(x0 + 5, max(x0 + 6, x1 - 60)))
    cv2.rectangle(strip, (door_x, 370), (door_x + 45, 440), tuple(int(c) for c in rng.integers(0, 120, 3)), -1)
    word = WORDS[int(rng.integers(len(WORDS)))]
    sign = tuple(int(c) for c in rng.integers(0, 255, 3))
    cv2.rectangle(strip, (x0 + 10, 335), (min(x1 - 10, x0 + 20 + 22 * len(word)), 365), sign, -1)
    cv2.putText(
        strip, word, (x0 + 14, 360), cv2.FONT_HERSHEY_SIMPLEX, 0.8, tuple(255 - c for c in sign), 2, cv2.LINE_AA
    )
    for _ in range(int(rng.integers(1, 5))):
        c = (int(rng.integers(x0, x1)), int(rng.integers(top, 430)))
        cv2.circle(strip, c, int(rng.integers(5, 30)), tuple(int(v) for v in rng.integers(0, 255, 3)), -1)


def render_view(world: World, s: float, rng: np.random.Generator, change: float = 1.0) -> np.ndarray:
    """View centred at fraction ``s`` of the street; ``change`` scales viewpoint and lighting
    perturbations (0 = canonical view). Returns (VIEW_H, VIEW_W, 3) uint8 BGR."""
    cx = VIEW_W + s * METRES * PX_PER_M
    zoom = 1.0 + change * rng.uniform(-0.12, 0.12)
    half_w, half_h = VIEW_W / 2 / zoom, STRIP_HEIGHT / 2 / zoom
    yaw = change * rng.uniform(-0.08, 0.08) * half_h
    src = np.array(
        [
            [cx - half_w, STRIP_HEIGHT / 2 - half_h + yaw],
            [cx + half_w, STRIP_HEIGHT / 2 - half_h - yaw],
            [cx + half_w, STRIP_HEIGHT / 2 + half_h + yaw],
            [cx - half_w, STRIP_HEIGHT / 2 + half_h - yaw],
        ],
        np.float32,
    )
    dst = np.array([[0, 0], [VIEW_W, 0], [VIEW_W, VIEW_H], [0, VIEW_H]], np.float32)
    view = cv2.warpPerspective(
        world.strip, cv2.getPerspectiveTransform(src, dst), (VIEW_W, VIEW_H), borderMode=cv2.BORDER_REFLECT
    )
    if change:
        gain = 1.0 + change * rng.uniform(-0.3, 0.3)
        bias = change * rng.uniform(-25, 25)
        view = np.clip(view.astype(np.float32) * gain + bias + rng.normal(0, 3 * change, view.shape), 0, 255)
        view = cv2.GaussianBlur(view.astype(np.uint8), (0, 0), 0.3 + change * rng.uniform(0, 1.0))
    return view.astype(np.uint8)


def street_location(s: float) -> tuple[float, float]:
    """(lat, lon) of fraction ``s`` along the street (it runs due east from ORIGIN)."""
    metres = s * METRES
    return ORIGIN[0], ORIGIN[1] + metres / (111320.0 * np.cos(np.radians(ORIGIN[0])))


def write_dataset(
    folder: str | os.PathLike,
    n_database: int = 60,
    n_queries: int = 20,
    n_foreign: int = 8,
    seed: int = 7,
    n_negatives: int = 0,
    sessions: int = 1,
) -> Path:
    """Write a dataset in the ``placekit eval`` layout: database/, queries/ (+ foreign views of
    another street, named ``foreign_*``), database.csv and queries.csv (WGS84); with
    ``n_negatives``, also negatives/: views of a third street for ``MapBuilder.add_negative``.
    ``sessions`` > 1: the map views are captured in that many visits (every ``sessions``-th
    view in each, the later visits under the queries' changed conditions), written as the
    ``group`` column so that calibration judges views against other visits."""
    from placekit.ingest import write_locations_csv
    from placekit.types import Location

    folder = Path(folder)
    world, other = render_world(seed), render_world(seed + 1000)
    rng = np.random.default_rng(seed)
    tables: dict[str, dict[str, Location]] = {"database": {}, "queries": {}}
    groups: dict[str, str | None] = {}
    for split, count, world_, change in (("database", n_database, world, 0.3), ("queries", n_queries, world, 1.0)):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            s = (i + (0.0 if split == "database" else rng.uniform(0.2, 0.8))) / n_database
            name = f"{split[0]}{i:04d}.jpg"
            visit = i % sessions if split == "database" else 0
            cv2.imwrite(str(folder / split / name), render_view(world_, s, rng, change if visit == 0 else 1.0))
            lat, lon = street_location(s)
            tables[split][name] = Location(lat=lat, lon=lon)
            if split == "database":
                groups[name] = f"visit-{visit}"
    for i in range(n_foreign):
        name = f"foreign_{i:04d}.jpg"
        cv2.imwrite(str(folder / "queries" / name), render_view(other, rng.uniform(0, 1), rng, 1.0))
    write_locations_csv(folder / "database.csv", tables["database"], groups if sessions > 1 else None)
    write_locations_csv(folder / "queries.csv", tables["queries"])
    if n_negatives:
        third, neg_rng = render_world(seed + 2000), np.random.default_rng(seed + 2000)
        (folder / "negatives").mkdir(parents=True, exist_ok=True)
        for i in range(n_negatives):
            cv2.imwrite(
                str(folder / "negatives" / f"n{i:04d}.jpg"), render_view(third, (i + 0.5) / n_negatives, neg_rng, 1.0)
            )
    return folder


def run_demo(
    workdir: str | os.PathLike | None = None, model: str = "default", threads: int = 0, quiet: bool = False
) -> dict:
    """Render, build, localize, report. Returns the summary dict it prints."""
    from placekit.builder import MapBuilder
    from placekit.geometry.frames import LocalFrame
    from placekit.ingest import read_locations_and_groups, read_locations_csv
    from placekit.localizer import Localizer
    from placekit.options import BuildOptions, LocalizerOptions

    say = (lambda *a: None) if quiet else print
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        t0 = time.perf_counter()
        write_dataset(root, n_negatives=DEMO_NEGATIVES, sessions=DEMO_VISITS)
        say(
            f"rendered a {METRES:.0f} m street: 60 map views from {DEMO_VISITS} visits, 20 held-out views, "
            f"8 views of another street, {DEMO_NEGATIVES} views of a third street (negatives: calibration only) "
            f"-> {root}"
        )
        builder = MapBuilder(BuildOptions(model=model, threads=threads, match_radius_m=10.0))
        db = read_locations_and_groups(root / "database.csv")
        builder.add_many(((root / "database" / n, loc, n, group) for n, (loc, group) in db.items()), progress=not quiet)
        for path in sorted((root / "negatives").iterdir()):
            builder.add_negative(path)
        info = builder.build(root / "street.pkmap", user={"source": "placekit demo"})
        say(
            f"built {root / 'street.pkmap'}: {info.places} places, {info.file_bytes} bytes, "
            f"recipe {info.index['recipe']}, unknown below score "
            f"{info.calibration['unknown_threshold']:.3f} "
            f"({info.calibration['stats'].get('negative_rejection', 0):.0%} of the negatives below it)"
        )
        queries = read_locations_csv(root / "queries.csv")
        frame = LocalFrame(*ORIGIN)
        errors, statuses, foreign, latency = [], [], [], []
        with Localizer.open(root / "street.pkmap", LocalizerOptions(threads=threads)) as loc:
            say(f"{'query':<18}{'status':<11}{'error m':>9}{'conf':>7}{'ms':>7}")
            for path in sorted((root / "queries").iterdir()):
                r = loc.localize(path)
                latency.append(r.timings_ms["total"])
                if path.name in queries:
                    truth = queries[path.name]
                    statuses.append(r.status)
                    err = None
                    if r.location is not None:
                        a = frame.to_local(r.location.lat, r.location.lon)
                        b = frame.to_local(truth.lat, truth.lon)
                        err = float(np.linalg.norm((a - b)[:2]))
                        errors.append(err)
                else:
                    foreign.append(r.status)
                    err = None
                say(
                    f"{path.name:<18}{r.status:<11}{'-' if err is None else f'{err:.1f}':>9}"
                    f"{r.confidence:>7.2f}{r.timings_ms['total']:>7.1f}"
                )
        summary = {
            "held_out_queries": len(statuses),
            "localized_share": statuses.count("localized") / max(len(statuses), 1),
            "median_error_m": float(np.median(errors)) if errors else None,
            "within_10m_share": float(np.mean([e <= 10.0 for e in errors])) if errors else 0.0,
            "foreign_queries": len(foreign),
            "foreign_unknown_share": foreign.count("unknown") / max(len(foreign), 1),
            "latency_ms_p50": float(np.median(latency)),
            "seconds": time.perf_counter() - t0,
        }
        say("summary: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
        return summary
