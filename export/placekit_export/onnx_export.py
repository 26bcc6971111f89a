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
    """An exported model disagrees with its PyTorch source beyond the tolerance."""


def onnx_descriptors(path: str | os.PathLike, inputs: list[np.ndarray]) -> np.ndarray:
    """Run the exported file on ONNX Runtime over preprocessed (1, ...) inputs -> (N, D)."""
    from placekit.engine import open_engine

    engine = open_engine(path, backend="onnx", threads=2)
    return np.concatenate([engine.run(x) for x in inputs])


def torch_descriptors(net: torch.nn.Module, inputs: list[np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([net(torch.from_numpy(x)).numpy() for x in inputs])


def check_parity(net: torch.nn.Module, path: str | os.PathLike, inputs: list[np.ndarray],
                 min_cosine: float = 0.9999) -> dict:
    """Cosine similarity between PyTorch and ONNX Runtime descriptors of the same inputs.
    Raises ParityError when the smallest cosine is below ``min_cosine``."""
    a = torch_descriptors(net, inputs)
    b = onnx_descriptors(path, inputs)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    top1_a = np.argmax(a @ a.T - 2 * np.eye(len(a)), axis=1)
    top1_b = np.argmax(b @ a.T - 2 * np.eye(len(a)), axis=1)
    result = {"n_images": len(inputs), "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
              "top1_agreement": float((top1_a == top1_b).mean()), "threshold": min_cosine}
    if result["min_cosine"] < min_cosine:
        raise ParityError(f"{path}: ONNX vs PyTorch cosine {result['min_cosine']:.6f} < {min_cosine}")
    return result
