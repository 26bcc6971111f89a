"""TFLite and quantized exports on a small random HardNet (needs torch + litert-torch, the
[train] extra, and LiteRT, the [tflite] extra)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export tests need torch (pip install 'placekit[train]')")
pytest.importorskip("litert_torch", reason="TFLite export needs litert-torch (pip install 'placekit[train]')")
pytest.importorskip("ai_edge_litert", reason="LiteRT runtime missing (pip install 'placekit[tflite]')")

from placekit.inference.engine import open_engine  # noqa: E402
from placekit.inference.extractors import LocalDescriber  # noqa: E402
from placekit.inference.modelinfo import ModelInfo  # noqa: E402
from placekit.inference.tflite_metadata import read_tflite_metadata  # noqa: E402
from placekit_export.hardnet import HardNet  # noqa: E402
from placekit_export.networks import PATCH_BATCH, patch_inputs  # noqa: E402
from placekit_export.onnx_export import (ParityError, check_parity, export_onnx, model_descriptors,  # noqa: E402
                                        torch_descriptors)
from placekit_export.onnx_quantize import quantize_onnx_int8  # noqa: E402
from placekit_export.tflite_export import (INT8_OPS, add_tflite_metadata, convert_tflite, op_input_types,  # noqa: E402
                                          quantize_tflite)

INFO = ModelInfo(name="hardnet-test", kind="local", output_dim=128, fixed_size=(32, 32), color="GRAY",
                 mean=(0.0,), std=(255.0,), checkpoint_sha256="x", patch_extent=7.5)


def _patches(n: int, seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 255, (40 * n, 40), dtype=np.uint8), (0, 0), 1.5)
    return np.stack([base[40 * i:40 * i + 32, 4:36] for i in range(n)])


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = HardNet()
    model.train()
    with torch.no_grad():
        for s in range(3):  # BatchNorm statistics from patch-like inputs, so outputs depend on inputs
            model(torch.from_numpy(_patches(128, s).astype(np.float32)[:, None] / 255.0))
    return model.eval()


@pytest.fixture(scope="module")
def tflite_fp32(net, tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "hardnet-test-fp32.tflite"
    path.write_bytes(add_tflite_metadata(convert_tflite(net, torch.zeros(PATCH_BATCH, 1, 32, 32)), INFO.to_metadata()))
    return path


def test_tflite_metadata_round_trip(tflite_fp32):
    data = tflite_fp32.read_bytes()
    assert ModelInfo.from_metadata(read_tflite_metadata(data)) == INFO
    twice = add_tflite_metadata(data, {**INFO.to_metadata(), "placekit.version": "2"})
    assert read_tflite_metadata(twice)["placekit.version"] == "2"
    engine = open_engine(tflite_fp32)
    assert engine.backend == "litert" and engine.info == INFO


def test_tflite_fp32_parity_and_any_batch(net, tflite_fp32):
    inputs = patch_inputs(_patches(100, 7))
    result = check_parity(net, tflite_fp32, inputs, "fp32")
    assert result["min_cosine"] >= 0.9999
    d = LocalDescriber(open_engine(tflite_fp32), batch=32)
    assert d.engine.fixed_batch == PATCH_BATCH
    out = d.describe_patches(_patches(45, 7))  # padded to the traced batch of 64
    ref = net(torch.from_numpy(_patches(45, 7).astype(np.float32)[:, None] / 255.0)).detach().numpy()
    assert np.allclose(out, ref, atol=1e-4)


def test_litert_and_onnx_runtime_agree(net, tflite_fp32, tmp_path):
    onnx_path = export_onnx(net, INFO, tmp_path / "h.onnx", (PATCH_BATCH, 1, 32, 32))
    patches = _patches(70, 3)
    a = LocalDescriber(open_engine(onnx_path)).describe_patches(patches)
    b = LocalDescriber(open_engine(tflite_fp32)).describe_patches(patches)
    assert ((a * b).sum(1)).min() > 0.9999


def test_int8_exports_run_and_are_checked(net, tmp_path):
    calib = patch_inputs(_patches(256, 11))
    held_out = patch_inputs(_patches(128, 12))
    fp32 = export_onnx(net, INFO, tmp_path / "f.onnx", (PATCH_BATCH, 1, 32, 32))
    quantize_onnx_int8(fp32, tmp_path / "q.onnx", calib)
    assert open_engine(tmp_path / "q.onnx").info == INFO
    assert (tmp_path / "q.onnx").stat().st_size < 0.4 * fp32.stat().st_size
    # random patches give near-identical descriptors, so only the cosine part of the gate means something here
    a, b = torch_descriptors(net, held_out), model_descriptors(tmp_path / "q.onnx", held_out)
    assert (a * b).sum(1).mean() >= 0.98
    tfl = add_tflite_metadata(quantize_tflite(convert_tflite(net, torch.zeros(PATCH_BATCH, 1, 32, 32)), "int8", calib),
                              INFO.to_metadata())
    (tmp_path / "q.tflite").write_bytes(tfl)
    # the convolutional body runs in int8 in one piece; normalisation and head stay float
    ops = op_input_types(tfl)
    int8 = [i for i, (_, t) in enumerate(ops) if t == "INT8"]
    assert all(ops[i][1] == "INT8" for i in range(int8[0], int8[-1] + 1)), ops
    assert {op for op, _ in ops[int8[0]:int8[-1] + 1]} <= {name for name, _ in INT8_OPS} | {"DEQUANTIZE"}
    assert ops[int8[0] - 1][0] == "QUANTIZE" and ops[int8[-1]][0] == "DEQUANTIZE"
    assert all(t == "FLOAT32" for op, t in ops[int8[-1] + 1:])
    assert (tmp_path / "q.tflite").stat().st_size < 0.5 * len(convert_tflite(net, torch.zeros(PATCH_BATCH, 1, 32, 32)))
    for path in (tmp_path / "q.onnx", tmp_path / "q.tflite"):
        out = LocalDescriber(open_engine(path)).describe_patches(_patches(20, 12))
        ref = net(torch.from_numpy(_patches(20, 12).astype(np.float32)[:, None] / 255.0)).detach().numpy()
        assert np.isfinite(out).all() and (out * ref).sum(1).mean() > 0.9
        # flat patches (sky, blank walls) have zero spread: int8 kernels must not divide by it
        flat = LocalDescriber(open_engine(path)).describe_patches(np.full((3, 32, 32), 128, np.uint8))
        assert np.isfinite(flat).all()


def test_int8_needs_calibration(net):
    with pytest.raises(ValueError, match="calibration"):
        quantize_tflite(b"unused", "int8", [])
    with pytest.raises(ValueError, match="calibration"):
        quantize_onnx_int8(None, None, [])  # type: ignore[arg-type]


def test_parity_rejects_a_different_network(net, tflite_fp32):
    torch.manual_seed(1)
    other = HardNet()
    other.train()
    with torch.no_grad():
        other(torch.from_numpy(_patches(128, 0).astype(np.float32)[:, None] / 255.0))
    with pytest.raises(ParityError):
        check_parity(other.eval(), tflite_fp32, patch_inputs(_patches(64, 5)), "fp32")
