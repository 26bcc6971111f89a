"""ONNX int8 (static QDQ, per-channel, onnxruntime.quantization) and fp16 conversions."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


class _Reader:
    """onnxruntime CalibrationDataReader over a list of model inputs."""

    def __init__(self, name: str, inputs: list[np.ndarray]):
        self._items = iter([{name: x} for x in inputs])

    def get_next(self):
        return next(self._items, None)


def quantize_onnx_int8(src: Path, out: Path, calibration: list[np.ndarray]) -> None:
    """Static QDQ quantization: int8 per-channel weights, uint8 activations, min/max ranges
    calibrated on ``calibration`` (preprocessed model inputs). Metadata is carried over."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ValueError("int8 export needs calibration inputs")
    meta = {p.key: p.value for p in onnx.load(str(src)).metadata_props}
    name = onnx.load(str(src)).graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
        quantized = Path(tmp) / "int8.onnx"
        quantize_static(
            str(prepped),
            str(quantized),
            _Reader(name, calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        _finish(onnx.load(str(quantized)), meta, out)


def convert_onnx_fp16(src: Path, out: Path) -> None:
    """float16 weights and compute, float32 inputs and outputs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    meta = {p.key: p.value for p in model.metadata_props}
    _finish(convert_float_to_float16(model, keep_io_types=True), meta, out)


def _finish(model, meta: dict[str, str], out: Path) -> None:
    import onnx

    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    tmp = out.with_suffix(out.suffix + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
