"""Every shipped model runs through the runtime on its own backend (ONNX Runtime or LiteRT):
global models build a map and localize in it, local models describe patches like their fp32
ONNX sibling. Skipped when the shipped files are not installed."""
from __future__ import annotations

import numpy as np
import pytest

import placekit as pk
from placekit.demo import render_view, render_world, street_location
from placekit.engine import open_engine
from placekit.features import LocalDescriber

SHIPPED = pk.list_models()
GLOBAL = [e for e in SHIPPED if e.kind == "global"]
LOCAL = [e for e in SHIPPED if e.kind == "local"]


@pytest.fixture(scope="module")
def street():
    world = render_world(3)
    positions = np.linspace(0.05, 0.95, 24)
    views = [render_view(world, s, np.random.default_rng(i)) for i, s in enumerate(positions)]
    query = render_view(world, positions[9] + 0.004, np.random.default_rng(99))
    return positions, views, query


@pytest.mark.skipif(not GLOBAL, reason="shipped model files are not installed")
@pytest.mark.parametrize("entry", GLOBAL, ids=lambda e: e.name)
def test_global_model_builds_a_map_and_localizes(entry, street, tmp_path):
    positions, views, query = street
    builder = pk.MapBuilder(pk.BuildOptions(model=str(entry.path), threads=1))
    for i, (s, view) in enumerate(zip(positions, views)):
        lat, lon = street_location(float(s))
        builder.add(view, pk.Location(lat=lat, lon=lon), f"v{i}")
    builder.build(tmp_path / "street.pkmap")
    backend = "litert" if entry.format == "tflite" else "onnx"
    with pk.Localizer.open(tmp_path / "street.pkmap", pk.LocalizerOptions(threads=1, backend=backend)) as loc:
        result = loc.localize(query)
    assert result.matches and result.matches[0].place_id in (8, 9, 10)


@pytest.mark.skipif(not LOCAL, reason="shipped model files are not installed")
@pytest.mark.parametrize("entry", LOCAL, ids=lambda e: e.name)
def test_local_model_describes_patches_like_its_fp32_onnx_sibling(entry):
    rng = np.random.default_rng(0)
    import cv2

    patches = np.stack([cv2.GaussianBlur(rng.integers(0, 255, (32, 32), np.uint8), (0, 0), 1.2) for _ in range(40)])
    reference = next(e for e in LOCAL if e.format == "onnx" and e.precision == "fp32" and e.family == entry.family)
    a = LocalDescriber(open_engine(reference.path, threads=1)).describe_patches(patches)
    b = LocalDescriber(open_engine(entry.path, threads=1)).describe_patches(patches)
    assert b.shape == a.shape and np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-3)
    assert float((a * b).sum(1).mean()) > 0.95
