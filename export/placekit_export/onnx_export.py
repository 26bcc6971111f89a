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

from placekit.inference.modelinfo import ModelInfo

OPSET = 17


def export_onnx(net: torch.nn.Module, info: ModelInfo, out: str | os.PathLike, example_shape: tuple[int, ...]) -> Path:
    """Write ``net`` to ``out`` (one .onnx file). example_shape: e.g. (1, 3, 320, 480)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    dynamic = {0: "batch", 2: "height", 3: "width"} if info.kind in ("global", "dense") else {0: "batch"}
    # a dense model's output grid follows the image size
    out_dynamic = {0: "batch", 2: "grid_height", 3: "grid_width"} if info.kind == "dense" else {0: "batch"}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        with torch.no_grad():
            torch.onnx.export(
                net,
                (torch.zeros(example_shape),),
                str(raw),
                input_names=["image"],
                output_names=["descriptor"],
                dynamic_axes={"image": dynamic, "descriptor": out_dynamic},
                opset_version=OPSET,
                dynamo=False,
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


# Thresholds per precision: fp32 exact up to float rounding; fp16 close; int8 (``docs/models.md``, "Export and parity")
PARITY = {
    "fp32": {"min_cosine": 0.9999},
    "fp16": {"min_cosine": 0.999},
    "int8": {"mean_cosine": 0.98, "top1_agreement": 0.95},
}
# Queries whose two best PyTorch neighbours are closer than this (cosine) have no defined top-1
# at reduced precision: int8 moves similarities by a few thousandths, so the order of a near-tie
# is arbitrary. Top-1 agreement is gated on the other ("decisive") queries; the raw agreement
# over all queries is reported beside it.
TIE_MARGIN = 0.005
MIN_DECISIVE_SHARE = 0.5


def model_descriptors(path: str | os.PathLike, inputs: list[np.ndarray]) -> np.ndarray:
    """Run an exported file through placekit's engine (ONNX Runtime or LiteRT) -> (N, D)."""
    from placekit.inference.engine import open_engine

    engine = open_engine(path, threads=2)
    return np.concatenate([engine.run(x) for x in inputs])


def torch_descriptors(net: torch.nn.Module, inputs: list[np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([net(torch.from_numpy(x)).numpy() for x in inputs])


def retrieval_agreement(reference: np.ndarray, exported: np.ndarray, tie_margin: float = TIE_MARGIN) -> dict:
    """Top-1 agreement between two sets of L2-normalised descriptors of the same N items, (N, D)
    each: item i agrees when its nearest other item, searched with its ``exported`` descriptor
    among the ``reference`` descriptors of the rest, is the one ``reference`` itself finds.

    Returns ``top1_agreement`` over decisive items (reference gap between its best and second
    best neighbour >= ``tie_margin``), ``top1_agreement_all`` over every item, and
    ``decisive_items``."""
    exclude_self = 2.0 * np.eye(len(reference))
    ref_sim = reference @ reference.T - exclude_self
    exp_sim = exported @ reference.T - exclude_self
    agree = np.argmax(ref_sim, 1) == np.argmax(exp_sim, 1)
    best_two = np.sort(ref_sim, 1)[:, -2:]
    decisive = (best_two[:, 1] - best_two[:, 0]) >= tie_margin
    return {
        "top1_agreement": float(agree[decisive].mean()) if decisive.any() else 0.0,
        "top1_agreement_all": float(agree.mean()),
        "decisive_items": int(decisive.sum()),
        "tie_margin": tie_margin,
    }


def check_parity(
    net: torch.nn.Module, path: str | os.PathLike, inputs: list[np.ndarray], precision: str = "fp32"
) -> dict:
    """Compare the exported model with PyTorch on the same inputs.

    Reports min / mean cosine between descriptors and top-1 agreement (``retrieval_agreement``).
    Raises ParityError when a threshold of ``PARITY`` is missed, or when fewer than
    ``MIN_DECISIVE_SHARE`` of the items are decisive (the set cannot measure agreement)."""
    a = torch_descriptors(net, inputs)
    b = model_descriptors(path, inputs)
    a = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-12)
    b = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-12)
    cos = (a * b).sum(1)
    result = {
        "n_items": int(len(a)),
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        **retrieval_agreement(a, b),
        "thresholds": PARITY[precision],
    }
    missed = [f"{k} {result[k]:.4f} < {v}" for k, v in PARITY[precision].items() if result[k] < v]
    if "top1_agreement" in PARITY[precision] and result["decisive_items"] < MIN_DECISIVE_SHARE * len(a):
        missed.append(
            f"only {result['decisive_items']} of {len(a)} items have a decisive top-1 "
            f"(margin {TIE_MARGIN}); use a more varied parity set"
        )
    if missed:
        raise ParityError(f"{path}: {precision} export fails parity with PyTorch: " + ", ".join(missed), result)
    return result
