"""PyTorch -> TFLite with litert-torch; int8 / fp16 with ai-edge-quantizer; placekit metadata.

The metadata is a TFLite ``metadata`` entry named ``placekit`` whose buffer holds the JSON of
``ModelInfo.to_metadata()``; ``placekit.tflite_metadata`` reads it back without TensorFlow.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from placekit.tflite_metadata import METADATA_NAME

SIGNATURE = "serving_default"


def convert_tflite(net: torch.nn.Module, example: torch.Tensor) -> bytes:
    """fp32 TFLite flatbuffer of ``net`` traced at ``example``'s shape. Nothing in placekit's
    networks depends on the input size, so LiteRT can resize the input at run time."""
    import litert_torch

    edge = litert_torch.convert(net.eval(), (example,))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        edge.export(str(path))
        return path.read_bytes()


def _input_name(model: bytes) -> str:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=model).get_signature_runner(SIGNATURE)
    return next(iter(runner.get_input_details()))


def quantize_tflite(model: bytes, precision: str, calibration: list[np.ndarray] | None = None) -> bytes:
    """int8: static int8 weights and activations (min/max calibrated on ``calibration``, each
    a model input of the traced shape). fp16: weights stored as float16."""
    if precision == "int8" and not calibration:
        raise ValueError("int8 export needs calibration inputs")
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "float.tflite"
        src.write_bytes(model)
        qt = quantizer.Quantizer(str(src))
        if precision == "int8":
            qt.load_quantization_recipe(recipe.static_wi8_ai8())
            name = _input_name(model)
            result = qt.quantize(qt.calibrate({SIGNATURE: [{name: x} for x in calibration]}, num_threads=1))
        elif precision == "fp16":
            qt.add_weight_only_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                      algorithm_key=AlgorithmName.FLOAT_CASTING)
            result = qt.quantize()
        else:
            raise ValueError(f"unknown precision {precision!r}")
        out = Path(tmp) / "quantized.tflite"
        result.export_model(str(out))
        return out.read_bytes()


def add_tflite_metadata(model: bytes, metadata: dict[str, str]) -> bytes:
    """Return ``model`` with a ``placekit`` metadata entry (replacing an earlier one)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    for b in m.buffers or []:
        # large models keep buffer bytes after the flatbuffer (offset/size); re-packing needs them inline
        if b.offset and b.offset > 1 and b.size:
            b.data = np.frombuffer(model[b.offset:b.offset + b.size], np.uint8)
            b.offset, b.size = 0, 0
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode("utf-8"), np.uint8)
    m.buffers = list(m.buffers or []) + [buffer]
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(m.buffers) - 1
    kept = [e for e in (m.metadata or []) if (e.name.decode() if isinstance(e.name, bytes) else e.name) != METADATA_NAME]
    m.metadata = kept + [entry]
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
