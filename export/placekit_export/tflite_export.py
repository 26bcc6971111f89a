"""PyTorch -> TFLite with litert-torch; int8 / fp16 with ai-edge-quantizer; placekit metadata.

int8 quantizes the convolutional body (``INT8_OPS``: convolutions, depthwise convolutions, and
the residual additions and paddings inside conv modules; int8 weights per channel, int8
activations) and leaves the head in float: GeM's pow / mean / root, the whitening layer and the
L2 normalisation. Quantizing the head too (``ALL_OPS_INT8``) is no faster (4.96 vs 4.64 ms at
352x480, 2 threads) and cubes int8 rounding error in GeM: on the parity set the ImageNet GeM's
mean cosine drops from 0.997 to 0.985 and the trained GeM's from 0.987 to 0.79
(benchmarks/RESULTS.md, "GeM int8: parity gate").
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from placekit.inference.tflite_metadata import METADATA_NAME

SIGNATURE = "serving_default"
# (op, regex on the op's output tensor name, which litert-torch derives from the module path):
# every convolution, and the additions and paddings inside convolutional modules (residual
# adds, explicit "same" padding) so that the int8 body runs in one piece
CONV_BODY = ".*Conv.*"
INT8_OPS = (("CONV_2D", ".*"), ("DEPTHWISE_CONV_2D", ".*"), ("ADD", CONV_BODY), ("PAD", CONV_BODY))
ALL_OPS_INT8 = (("ALL_SUPPORTED", ".*"),)


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


def quantize_tflite(
    model: bytes,
    precision: str,
    calibration: list[np.ndarray] | None = None,
    int8_ops: tuple[tuple[str, str], ...] = INT8_OPS,
) -> bytes:
    """int8: static int8 weights and activations of the ops ``int8_ops`` names (pairs of an
    ai-edge-quantizer ``TFLOperationName`` and a regex on the op's name; ``ALL_OPS_INT8`` for
    every op; min/max calibrated on ``calibration``, each a model input of the traced shape),
    other ops float. fp16: weights stored as float16."""
    if precision == "int8" and not calibration:
        raise ValueError("int8 export needs calibration inputs")
    from ai_edge_quantizer import quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "float.tflite"
        src.write_bytes(model)
        qt = quantizer.Quantizer(str(src))
        if precision == "int8":
            for op, regex in int8_ops:
                qt.add_static_config(regex, getattr(TFLOperationName, op), activation_num_bits=8, weight_num_bits=8)
            name = _input_name(model)
            result = qt.quantize(qt.calibrate({SIGNATURE: [{name: x} for x in calibration]}, num_threads=1))
        elif precision == "fp16":
            qt.add_weight_only_config(
                regex=".*",
                operation_name=TFLOperationName.ALL_SUPPORTED,
                num_bits=16,
                algorithm_key=AlgorithmName.FLOAT_CASTING,
            )
            result = qt.quantize()
        else:
            raise ValueError(f"unknown precision {precision!r}")
        out = Path(tmp) / "quantized.tflite"
        result.export_model(str(out))
        return out.read_bytes()


def op_input_types(model: bytes) -> list[tuple[str, str]]:
    """(operator, type of its first input) for every operator of the main subgraph, in order,
    e.g. ``("CONV_2D", "INT8")``: shows which ops a quantized model runs in int8."""
    from ai_edge_litert import schema_py_generated as schema

    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    graph = m.subgraphs[0]
    out = []
    for op in graph.operators:
        code = m.operatorCodes[op.opcodeIndex]
        out.append(
            (op_names[max(code.builtinCode, code.deprecatedBuiltinCode)], type_names[graph.tensors[op.inputs[0]].type])
        )
    return out


def add_tflite_metadata(model: bytes, metadata: dict[str, str]) -> bytes:
    """Return ``model`` with a ``placekit`` metadata entry (replacing an earlier one)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    for b in m.buffers or []:
        # large models keep buffer bytes after the flatbuffer (offset/size); re-packing needs them inline
        if b.offset and b.offset > 1 and b.size:
            b.data = np.frombuffer(model[b.offset : b.offset + b.size], np.uint8)
            b.offset, b.size = 0, 0
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode("utf-8"), np.uint8)
    m.buffers = list(m.buffers or []) + [buffer]
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(m.buffers) - 1
    kept = [
        e for e in (m.metadata or []) if (e.name.decode() if isinstance(e.name, bytes) else e.name) != METADATA_NAME
    ]
    m.metadata = kept + [entry]
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
