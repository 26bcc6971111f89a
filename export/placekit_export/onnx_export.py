"""Export a PyTorch descriptor network to ONNX with placekit metadata, and check parity.

The graph is exported with a dynamic batch (and dynamic H, W for global models), simplified
with onnxsim, stamped with ``ModelInfo`` metadata and written atomically as one file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from placekit.modelinfo import ModelInfo

OPSET = 17


def export_onnx(net: torch.nn.Module, info: ModelInfo, out: str | os.PathLike,
                example_shape: tuple[int, ...]) -> Path:
    """Write ``net`` to ``out`` (one .onnx file). example_shape: e.g. (1, 3, 320, 480)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    dynamic = {0: "batch", 2: "height", 3: "width"} if info.kind == "global" else {0: "batch"}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        with torch.no_grad():
            torch.onnx.export(
                net, (torch.zeros(example_shape),), str(raw), input_names=["image"],
                output_names=["descriptor"], dynamic_axes={"image": dynamic, "descriptor": {0: "batch"}},
                opset_version=OPSET, dynamo=False,
            )
        model = onnx.load(str(raw))
    model = _simplify(model)
    del model.metadata_props[:]
    for key, value in info.to_metadata().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "placekit-export"
    onnx.checker.check_model(model)
    tmp_out = out.with_suffix(out.suffix + ".tmp")
    onnx.save(model, str(tmp_out))
    os.replace(tmp_out, out)
    return out


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        import onnxsim
    except ImportError:
        return model
    simplified, ok = onnxsim.simplify(model)
    return simplified if ok else model


class ParityError(RuntimeError):
    """An exported model disagrees with its PyTorch source beyond the tolerance. ``result``
    holds the measured figures."""

    def __init__(self, message: str, result: dict | None = None):
        super().__init__(message)
        self.result = result or {}


# Thresholds per precision: fp32 exact up to float rounding; fp16 close; int8 (DESIGN section 5)
PARITY = {
    "fp32": {"min_cosine": 0.9999},
    "fp16": {"min_cosine": 0.999},
    "int8": {"mean_cosine": 0.98, "top1_agreement": 0.95},
}


def model_descriptors(path: str | os.PathLike, inputs: list[np.ndarray]) -> np.ndarray:
    """Run an exported file through placekit's engine (ONNX Runtime or LiteRT) -> (N, D)."""
    from placekit.engine import open_engine

    engine = open_engine(path, threads=2)
    return np.concatenate([engine.run(x) for x in inputs])


def torch_descriptors(net: torch.nn.Module, inputs: list[np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([net(torch.from_numpy(x)).numpy() for x in inputs])


def check_parity(net: torch.nn.Module, path: str | os.PathLike, inputs: list[np.ndarray],
                 precision: str = "fp32") -> dict:
    """Compare the exported model with PyTorch on the same inputs.

    Reports min / mean cosine between descriptors and top-1 agreement: each item's nearest
    other item found with the exported model's descriptor (against the PyTorch descriptors of
    the rest) is the one PyTorch finds. Raises ParityError when a threshold of ``PARITY`` is
    missed."""
    a = torch_descriptors(net, inputs)
    b = model_descriptors(path, inputs)
    a = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-12)
    b = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-12)
    cos = (a * b).sum(1)
    self_mask = 2.0 * np.eye(len(a))
    agreement = float((np.argmax(a @ a.T - self_mask, 1) == np.argmax(b @ a.T - self_mask, 1)).mean())
    result = {"n_items": int(len(a)), "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
              "top1_agreement": agreement, "thresholds": PARITY[precision]}
    missed = [f"{k} {result[k]:.4f} < {v}" for k, v in PARITY[precision].items() if result[k] < v]
    if missed:
        raise ParityError(f"{path}: {precision} export fails parity with PyTorch: " + ", ".join(missed), result)
    return result
