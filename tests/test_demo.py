"""The demo the README runs, with the shipped model when it is installed."""
import pytest

from placekit.tools.demo import run_demo
from placekit.inference.catalog import DEFAULT_MODEL, list_models


def test_demo_with_shipped_model(tmp_path):
    if DEFAULT_MODEL + ".onnx" not in {e.name for e in list_models()}:
        pytest.skip("shipped model not installed")
    s = run_demo(tmp_path, quiet=True)
    assert s["held_out_queries"] == 20 and s["foreign_queries"] == 8
    assert s["localized_share"] >= 0.5 and s["median_error_m"] < 5.0
    assert s["foreign_unknown_share"] >= 0.6
    assert (tmp_path / "street.pkmap").is_file()


def test_demo_runs_with_any_model(tmp_path, tiny_model):
    s = run_demo(tmp_path, model=str(tiny_model), quiet=True)
    assert s["held_out_queries"] == 20 and s["latency_ms_p50"] > 0
