"""Honest ``unknown`` on maps of >= 16 images, build-time calibration warnings, and the
generalization suite's smoke run (generated streets; no shared/data needed)."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import placekit as pk
from placekit.decision.calibration import refitter as _refitter
from placekit.decision.calibration import calibrate
from placekit.tools.demo import render_view, render_world, street_location
from placekit.index.ivf import PlaceIndex

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
STREET_M = 400.0     # the rendered street's length in the map frame (x, metres)


def _views(world_seed: int, positions: np.ndarray, seed: int, change: float) -> list[np.ndarray]:
    world = render_world(world_seed)
    return [render_view(world, float(s), np.random.default_rng(seed + i), change) for i, s in enumerate(positions)]


@pytest.fixture(scope="module")
def street_descriptors():
    """The shipped default model's descriptors of 24 map views of one street, 8 later views of
    it, and 20 views of two other streets."""
    from placekit.inference.engine import open_engine
    from placekit.inference.extractors import GlobalExtractor
    from placekit.inference.catalog import resolve_model

    extractor = GlobalExtractor(open_engine(resolve_model("default"), threads=2))
    s = np.linspace(0.02, 0.98, 24)
    describe = lambda images: np.stack([extractor.describe_bgr(im) for im in images])  # noqa: E731
    x = describe(_views(1, s, 0, 0.3))
    queries = describe(_views(1, s[::3] + 0.01, 100, 1.0))
    foreign = describe(_views(5, np.linspace(0.05, 0.95, 10), 200, 1.0) + _views(9, np.linspace(0.05, 0.95, 10), 300, 1.0))
    xyz = np.stack([s * STREET_M, np.zeros_like(s), np.zeros_like(s)], axis=1)
    return x, xyz, queries, foreign


def test_cross_fitted_calibration_rejects_other_streets_that_in_sample_calibration_accepts(street_descriptors):
    x, xyz, _, foreign = street_descriptors
    ids = np.arange(len(x))
    index = PlaceIndex(f"PCAW{len(x) - 1},Flat", x.shape[1])     # the map whitens itself, as auto does at >= 16
    index.train(x)
    index.add(x, ids)
    foreign_scores = np.array([index.search(v, k=1)[1][0] for v in foreign])
    in_sample = calibrate(index, x, ids, xyz, 25.0, 0.9)
    cross_fitted = calibrate(index, x, ids, xyz, 25.0, 0.9, refit=_refitter(index, x, ids, seed=0))
    # inside its own whitening a map image scores its neighbours low, so the threshold falls
    # below what photos of other streets score: the failure the cross-fit exists for
    assert (foreign_scores < in_sample.unknown_threshold).mean() <= 0.2
    assert (foreign_scores < cross_fitted.unknown_threshold).mean() >= 0.75
    assert cross_fitted.stats["cross_fitted_folds"] == 5 and in_sample.stats["cross_fitted_folds"] == 0


def test_refitter_only_for_indexes_that_learn_from_the_map(street_descriptors):
    x = street_descriptors[0]
    ids = np.arange(len(x))
    flat = PlaceIndex("Flat", x.shape[1])
    flat.train(x)
    assert _refitter(flat, x, ids, 0) is None
    whitened = PlaceIndex("PCAW16,Flat", x.shape[1])
    whitened.train(x)
    fold = _refitter(whitened, x, ids, 0)(np.arange(len(x)) < 10)      # 10 rows: PCA shrinks to 9 dims
    assert fold.dim == 9 and fold.ntotal == len(x)


def test_built_map_of_24_views_answers_unknown_for_other_streets(tmp_path):
    s = np.linspace(0.02, 0.98, 24)
    builder = pk.MapBuilder(pk.BuildOptions(threads=2))
    for i, (image, v) in enumerate(zip(_views(1, s, 0, 0.3), s)):
        lat, lon = street_location(float(v))
        builder.add(image, pk.Location(lat=lat, lon=lon), f"v{i:02d}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pk.CalibrationWarning)
        info = builder.build(tmp_path / "street.pkmap")
    assert info.index["recipe"].startswith("PCAW") and info.calibration["stats"]["cross_fitted_folds"] == 5
    others = _views(5, np.linspace(0.05, 0.95, 10), 200, 1.0) + _views(9, np.linspace(0.05, 0.95, 10), 300, 1.0)
    with pk.Localizer.open(tmp_path / "street.pkmap", pk.LocalizerOptions(threads=2)) as loc:
        statuses = [loc.localize(image).status for image in others]
    assert statuses.count("unknown") / len(statuses) >= 0.75


def test_build_warns_when_the_target_precision_is_not_reached(tmp_path, tiny_model):
    """Two places, each seen once: no image can find its place with itself left out."""
    builder = pk.MapBuilder(pk.BuildOptions(model=str(tiny_model)))
    rng = np.random.default_rng(0)
    for i in range(4):
        builder.add(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8), pk.Location(x=1000.0 * i, y=0.0), f"r{i}")
    with pytest.warns(pk.CalibrationWarning, match="calibration incomplete|not reached|little evidence"):
        info = builder.build(tmp_path / "m.pkmap")
    assert info.warnings and all(isinstance(m, str) for m in info.warnings)
    with pk.Localizer.open(tmp_path / "m.pkmap", pk.LocalizerOptions(model=str(tiny_model))) as loc:
        assert loc.info().warnings == info.warnings          # stored in the map, shown by map info


def test_cli_map_build_prints_calibration_warnings(tmp_path, tiny_model):
    import cv2

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    lines = ["name,x,y"]
    for i in range(4):
        cv2.imwrite(str(folder / f"r{i}.png"), rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
        lines.append(f"r{i}.png,{1000.0 * i},0")
    (tmp_path / "loc.csv").write_text("\n".join(lines) + "\n")
    out = subprocess.run([sys.executable, "-m", "placekit.tools.cli", "map", "build", str(folder), "--locations",
                          str(tmp_path / "loc.csv"), "-o", str(tmp_path / "m.pkmap"), "--model", str(tiny_model),
                          "--quiet"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "warning: " in out.stderr and "Traceback" not in out.stderr
    info = subprocess.run([sys.executable, "-m", "placekit.tools.cli", "map", "info", str(tmp_path / "m.pkmap")],
                          capture_output=True, text=True)
    assert "warning " in info.stdout


def test_negatives_never_lower_the_threshold():
    """Negatives scoring below everything the map's own images score once took half of the
    out-of-map evidence, diluting the place-out impostors and lowering the threshold."""
    from placekit.decision.calibration import _fit

    positives = list(np.linspace(0.55, 0.95, 50))
    impostors = list(np.linspace(0.3, 0.75, 50))
    args = ((positives, [], impostors, [1.0], []), 25.0, 0.9, 0.02, 50, "none given")
    plain = _fit(*args)
    informed = _fit(*args, [0.0] * 50)
    assert informed.unknown_threshold >= plain.unknown_threshold
    assert informed.stats["negatives"] == 50 and informed.stats["negative_rejection"] == 1.0
    lifted = _fit(*args, [0.9] * 50)                  # negatives scoring high still lift it
    assert lifted.unknown_threshold > plain.unknown_threshold


def test_generalization_suite_smoke_run(tmp_path):
    out = tmp_path / "generalization.json"
    run = subprocess.run([sys.executable, str(BENCHMARKS / "generalization.py"), "--smoke", "--threads", "2",
                          "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["smoke"] is True and len(result["sets"]) == 3
    for name, rows in result["sets"].items():
        default = rows["default"]
        assert 0.0 <= default["recall_at_1"] <= default["recall_at_5"] <= 1.0
        assert set(default["foreign_unknown"]) == set(result["sets"]) - {name}
        assert 0.0 <= default["foreign_unknown_all"] <= 1.0 and default["latency_ms_p50"] > 0
        assert name in result["intervals_vs_default"]
