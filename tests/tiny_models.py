"""Tiny ONNX models built with the onnx helper API, so tests never need the shipped model.

``thumbnail_model``: fixed 64x64 RGB input -> Conv(3->8, k=8, s=8) -> flatten -> 512-D. A
fixed random projection of a colour thumbnail: crude, but it tells the demo street apart.
``pooled_model``: any-size input -> Conv(3->16, k=3) -> Relu -> GlobalAveragePool -> 16-D.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from placekit.inference.modelinfo import ModelInfo


def _save(graph: onnx.GraphProto, info: ModelInfo, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="placekit-tests")
    model.ir_version = 8
    for k, v in info.to_metadata().items():
        e = model.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def thumbnail_model(path: Path, seed: int = 0, name: str = "tiny-thumb") -> Path:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(8, 3, 8, 8)).astype(np.float32) / 8.0
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["c"], kernel_shape=[8, 8], strides=[8, 8]),
         helper.make_node("Flatten", ["c"], ["descriptor"], axis=1)],
        "thumb",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["batch", 512])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    info = ModelInfo(name=name, kind="global", output_dim=512, fixed_size=(64, 64), color="RGB",
                     mean=(127.0, 127.0, 127.0), std=(64.0, 64.0, 64.0), checkpoint_sha256=f"seed{seed}")
    return _save(graph, info, path)


def pooled_model(path: Path, seed: int = 0, output_dim_in_metadata: int = 16) -> Path:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(16, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("GlobalAveragePool", ["r"], ["g"]),
         helper.make_node("Flatten", ["g"], ["descriptor"], axis=1)],
        "pooled",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["batch", 16])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    info = ModelInfo(name="tiny-pooled", kind="global", output_dim=output_dim_in_metadata, input_size=96,
                     size_multiple=32, color="BGR", mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0))
    return _save(graph, info, path)


def model_without_metadata(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["descriptor"], axis=1)], "bare",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 4, 4])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["batch", 48])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def patch_model(path: Path, seed: int = 0) -> Path:
    """Local model: (batch, 1, 32, 32) patches -> flatten -> fixed random projection -> 16-D."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(1024, 16)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["patch"], ["f"], axis=1), helper.make_node("MatMul", ["f", "w"], ["descriptor"])],
        "patch",
        [helper.make_tensor_value_info("patch", TensorProto.FLOAT, ["batch", 1, 32, 32])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["batch", 16])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    info = ModelInfo(name="tiny-patch", kind="local", output_dim=16, fixed_size=(32, 32), color="GRAY",
                     mean=(0.0,), std=(255.0,), patch_extent=7.5)
    return _save(graph, info, path)


def dense_model(path: Path, seed: int = 0, dim: int = 16) -> Path:
    """Dense local model: (1, 1, H, W) grey -> SpaceToDepth(8) -> fixed random 1x1 conv ->
    sigmoid -> (1, dim + 1 + 64, H/8, W/8): the packing ``placekit_export.xfeat`` exports
    (descriptors, reliability, per-pixel keypoint probabilities of each 8 x 8 cell)."""
    rng = np.random.default_rng(seed)
    w = (rng.normal(size=(dim + 1 + 64, 64, 1, 1)) / 255.0).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("SpaceToDepth", ["image"], ["cells"], blocksize=8),
         helper.make_node("Conv", ["cells", "w"], ["c"]),
         helper.make_node("Sigmoid", ["c"], ["descriptor"])],
        "dense",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, "h", "w"])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, [1, dim + 65, "gh", "gw"])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    info = ModelInfo(name="tiny-dense", kind="dense", output_dim=dim, input_size=640, size_multiple=32,
                     color="GRAY", mean=(0.0,), std=(1.0,))
    return _save(graph, info, path)
