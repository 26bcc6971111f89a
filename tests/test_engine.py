"""Engines read preprocessing from the model file; bad models and backends give typed errors."""
from __future__ import annotations

import numpy as np
import pytest

import placekit as pk
from placekit.inference.engine import open_engine
from placekit.inference.extractors import GlobalExtractor
from placekit.inference.modelinfo import ModelInfo
from placekit.inference.preprocess import preprocess, target_size

from conftest import SHARED_DATA
from tiny_models import model_without_metadata, pooled_model


def test_metadata_comes_from_the_file(tiny_model):
    engine = open_engine(tiny_model, threads=1)
    assert engine.backend == "onnx" and engine.info.name == "tiny-thumb"
    assert engine.info.fixed_size == (64, 64) and engine.info.output_dim == 512
    assert len(engine.sha256) == 64
    x = preprocess(np.zeros((100, 150, 3), np.uint8), engine.info)
    assert x.shape == (1, 3, 64, 64)
    assert engine.run(x).shape == (1, 512)


def test_an_engine_sharing_the_cores_stops_spinning_at_the_end_of_each_run(tiny_model):
    def entry(engine, key):
        return engine.session.get_session_options().get_session_config_entry(key)

    sharing = open_engine(tiny_model, threads=2, spin=False)
    assert entry(sharing, "session.force_spinning_stop") == "1"
    alone = open_engine(tiny_model, threads=2)
    with pytest.raises(RuntimeError, match="does not have"):   # ORT's default: the entry is not set at all
        entry(alone, "session.force_spinning_stop")
    x = np.zeros((1, 3, *sharing.info.fixed_size), np.float32) if sharing.info.fixed_size else None
    if x is not None:
        np.testing.assert_allclose(sharing.run(x), alone.run(x), atol=1e-6)


def test_dynamic_size_model_resizes_to_multiples(tmp_path):
    engine = open_engine(pooled_model(tmp_path / "p.onnx"))
    assert target_size(300, 500, engine.info) == (64, 96)
    d = GlobalExtractor(engine).describe(np.full((300, 500, 3), 90, np.uint8))
    assert d.shape == (16,) and abs(np.linalg.norm(d) - 1) < 1e-5


def test_metadata_dim_mismatch_is_caught(tmp_path):
    engine = open_engine(pooled_model(tmp_path / "p.onnx", output_dim_in_metadata=32))
    with pytest.raises(pk.ModelFormatError, match="returned 16"):
        GlobalExtractor(engine).describe(np.zeros((64, 64, 3), np.uint8))


def test_model_errors(tmp_path):
    with pytest.raises(pk.ModelNotFoundError):
        open_engine(tmp_path / "none.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(pk.ModelFormatError, match="empty"):
        open_engine(tmp_path / "empty.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model at all" * 10)
    with pytest.raises(pk.ModelFormatError):
        open_engine(tmp_path / "junk.onnx")
    with pytest.raises(pk.ModelFormatError, match="metadata"):
        open_engine(model_without_metadata(tmp_path / "bare.onnx"))


def test_unavailable_provider_and_backend(tiny_model):
    with pytest.raises(pk.BackendUnavailableError, match="not available"):
        open_engine(tiny_model, providers=["NoSuchExecutionProvider"])
    with pytest.raises(pk.BackendUnavailableError):
        open_engine(tiny_model, backend="tensorflow")


def test_model_info_round_trip_and_validation():
    info = ModelInfo(name="m", kind="global", output_dim=8, input_size=320, size_multiple=32,
                     mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0), fixed_size=(10, 20))
    assert ModelInfo.from_metadata(info.to_metadata()) == info
    with pytest.raises(pk.ModelFormatError):
        ModelInfo(name="m", kind="global", output_dim=8)  # no input size
    with pytest.raises(pk.ModelFormatError):
        ModelInfo(name="m", kind="global", output_dim=8, input_size=10, std=(0.0, 1.0, 1.0))
    with pytest.raises(pk.ModelFormatError, match="malformed"):
        ModelInfo.from_metadata({"placekit.name": "m", "placekit.kind": "global", "placekit.output_dim": "x"})


CORAL = SHARED_DATA / "baselines" / "coral" / "mobilenet_v2_1.0_224_quant.tflite"


@pytest.mark.skipif(not CORAL.is_file(), reason="coral TFLite baseline needs ../shared/data")
def test_litert_engine_runs_a_quantized_tflite_model():
    pytest.importorskip("ai_edge_litert", reason="LiteRT not installed (pip install 'placekit[tflite]')")
    info = ModelInfo(name="coral-mnv2", kind="global", output_dim=1001, fixed_size=(224, 224),
                     mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), layout="NHWC")
    engine = open_engine(CORAL, threads=2, info=info)
    assert engine.backend == "litert"
    x = preprocess(np.full((300, 300, 3), 128, np.uint8), info)
    out = engine.run(x)
    assert out.shape == (1, 1001) and out.dtype == np.float32 and np.isfinite(out).all()
