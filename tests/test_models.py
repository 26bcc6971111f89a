"""The shipped-model registry."""
import pytest

import placekit as pk
from placekit.inference.catalog import DEFAULT_MODEL, resolve_model


def test_shipped_default_model_is_listed_with_a_card():
    entries = {e.name: e for e in pk.list_models()}
    if DEFAULT_MODEL + ".onnx" not in entries:
        pytest.skip("shipped model files are not installed in this environment")
    e = entries[DEFAULT_MODEL + ".onnx"]
    assert e.kind == "global" and e.format == "onnx"
    assert e.card.is_file() and e.path.is_file()
    assert resolve_model(DEFAULT_MODEL) == e.path == resolve_model("default")
    assert resolve_model("gem-imagenet") == resolve_model("gem-imagenet-fp32.onnx")


def test_default_local_models_ship_with_their_tflite_twins_and_the_vlad_vocabulary():
    from placekit.inference.catalog import shipped_vlad
    from placekit.options import DEFAULT_LOCAL_MODEL, DEFAULT_VLAD_LOCAL_MODEL

    entries = {e.name: e for e in pk.list_models()}
    if DEFAULT_LOCAL_MODEL + ".onnx" not in entries:
        pytest.skip("shipped model files are not installed in this environment")
    for name in (DEFAULT_LOCAL_MODEL, DEFAULT_VLAD_LOCAL_MODEL):
        e = entries[name + ".onnx"]
        assert e.kind == "local" and e.precision == "int8" and resolve_model(name) == e.path
        assert entries[name + ".tflite"].family == e.family  # the LiteRT backend finds its twin
    # the shipped VLAD vocabulary belongs to the VLAD maps' local model
    assert shipped_vlad(resolve_model(DEFAULT_VLAD_LOCAL_MODEL), 64, 128) is not None


def test_unknown_model_names_the_available_ones():
    with pytest.raises(pk.ModelNotFoundError, match="available"):
        resolve_model("no-such-model")
    with pytest.raises(pk.ModelNotFoundError):
        resolve_model("/no/such/model.onnx")
    with pytest.raises(pk.ModelNotFoundError):
        resolve_model("no-such-model.tflite")


def test_every_listed_model_has_a_unique_name_and_a_card():
    entries = pk.list_models()
    assert len({e.name for e in entries}) == len(entries)
    for e in entries:
        assert e.card.is_file() and len(e.sha256) == 64 and e.precision in ("fp32", "fp16", "int8")
