"""Every shipped model runs in the runtime: global models localize, local models describe
patches, and ONNX Runtime and LiteRT exports of one checkpoint agree."""
from __future__ import annotations

import numpy as np
import pytest

import placekit as pk
from placekit.inference.engine import open_engine
from placekit.inference.extractors import LocalDescriber
from placekit.inference.catalog import list_models

ENTRIES = list_models()
GLOBAL = [e for e in ENTRIES if e.kind == "global"]
LOCAL = [e for e in ENTRIES if e.kind == "local"]


def _usable(entry) -> bool:
    if entry.format != "tflite":
        return True
    try:
        import ai_edge_litert  # noqa: F401
        return True
    except ImportError:
        return False


@pytest.mark.parametrize("entry", GLOBAL, ids=[e.name for e in GLOBAL])
def test_global_models_build_and_localize(entry, street, tmp_path):
    if not _usable(entry):
        pytest.skip("LiteRT not installed")
    from placekit.ingest import read_locations_csv

    builder = pk.MapBuilder(pk.BuildOptions(model=entry.name, match_radius_m=10.0))
    for name, loc in list(read_locations_csv(street / "database.csv").items())[:20]:
        builder.add(street / "database" / name, loc, name)
    builder.build(tmp_path / "m.pkmap")
    with pk.Localizer.open(tmp_path / "m.pkmap") as loc:
        assert loc.extractor.engine.backend == ("litert" if entry.format == "tflite" else "onnx")
        r = loc.localize(street / "database" / "d0005.jpg")
    assert r.matches[0].name == "d0005.jpg"


@pytest.mark.parametrize("entry", LOCAL, ids=[e.name for e in LOCAL])
def test_local_models_agree_with_the_onnx_fp32_reference(entry, street):
    if not _usable(entry):
        pytest.skip("LiteRT not installed")
    import cv2

    reference = next(e for e in LOCAL if e.family == entry.family and e.format == "onnx" and e.precision == "fp32")
    gray = cv2.imread(str(street / "database" / "d0003.jpg"), cv2.IMREAD_GRAYSCALE)
    kps = cv2.SIFT_create(300).detect(gray, None)
    keypoints = np.array([[k.pt[0], k.pt[1], k.size, k.angle] for k in kps], np.float32)
    a = LocalDescriber(open_engine(reference.path)).describe_keypoints(gray, keypoints)
    b = LocalDescriber(open_engine(entry.path)).describe_keypoints(gray, keypoints)
    cos = (a * b).sum(1)
    if entry.precision == "fp32":
        assert cos.min() > 0.9999
    else:
        assert cos.mean() > 0.98


def test_a_map_built_with_onnx_answers_with_litert(street, tmp_path):
    pairs = [(o, t) for o in GLOBAL for t in GLOBAL if o.format == "onnx" and t.format == "tflite"
             and o.family == t.family and o.precision == t.precision]
    if not pairs or not _usable(pairs[0][1]):
        pytest.skip("no ONNX / TFLite pair of one global model, or LiteRT missing")
    onnx_entry, tflite_entry = pairs[0]
    from placekit.ingest import read_locations_csv

    builder = pk.MapBuilder(pk.BuildOptions(model=onnx_entry.name, match_radius_m=10.0))
    for name, loc in read_locations_csv(street / "database.csv").items():
        builder.add(street / "database" / name, loc, name)
    builder.build(tmp_path / "m.pkmap")
    queries = sorted((street / "queries").glob("q*.jpg"))
    with pk.Localizer.open(tmp_path / "m.pkmap") as a, \
            pk.Localizer.open(tmp_path / "m.pkmap", pk.LocalizerOptions(model=tflite_entry.name)) as b:
        same = [a.localize(q).matches[0].place_id == b.localize(q).matches[0].place_id for q in queries]
    assert all(same)
