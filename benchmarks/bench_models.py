"""Model benchmark: extraction latency of every shipped model x format x precision at 1 and 2
threads (GeM at 320, 480 and 640 px long side; HardNet as patches per second at batch 512),
beside the peer ``shared/data/baselines/coral/mobilenet_v2_1.0_224_quant.tflite`` in the same
run; FLOPs per frame (counted from the ONNX graph: 2 x multiply-adds of Conv / Gemm / MatMul)
and the share of this machine's measured float32 peak (best 2048^2 matrix product of NumPy and ONNX
Runtime; int8 kernels can exceed it); sizes on disk.
HardNet is timed through ``LocalDescriber`` on 512 uint8 patches (engines with a fixed batch,
such as the converted TFLite files, run it in several batches).

    python benchmarks/bench_models.py --out benchmarks/results/models.json
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from placekit.inference.engine import open_engine
from placekit.inference.extractors import LocalDescriber
from placekit.inference.modelinfo import ModelInfo
from placekit.inference.catalog import list_models
from placekit.inference.preprocess import preprocess

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

CORAL = ROOT.parent / "shared" / "data" / "baselines" / "coral" / "mobilenet_v2_1.0_224_quant.tflite"
GEM_SIZES = (320, 480, 640)
FRAME_HW = (768, 1024)  # a 4:3 camera frame
PATCH_BATCH = 512

PEAK = r"""
import sys, time, numpy as np, onnx, onnxruntime as ort
from onnx import TensorProto, helper
threads, n = int(sys.argv[1]), 2048
a = np.random.rand(n, n).astype(np.float32); b = np.random.rand(n, n).astype(np.float32)
def best(call):
    call(); out = 0.0
    for _ in range(5):
        t = time.perf_counter(); call(); out = max(out, 2 * n ** 3 / (time.perf_counter() - t))
    return out
graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
                          [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]); model.ir_version = 8
opts = ort.SessionOptions(); opts.intra_op_num_threads = threads
sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
print(max(best(lambda: a @ b), best(lambda: sess.run(None, {"a": a, "b": b}))))
"""


def peak_flops(threads: int) -> float:
    """Best float32 matrix-product rate of NumPy (BLAS) and ONNX Runtime (MLAS) on 2048^2."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return float(subprocess.run([sys.executable, "-c", PEAK, str(threads)], capture_output=True, text=True, env=env,
                                check=True).stdout)


def onnx_flops(path: Path, shape: tuple[int, ...]) -> float:
    """2 x multiply-accumulates of Conv, Gemm and MatMul nodes at a given input shape."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    inp = model.graph.input[0]
    for dim, value in zip(inp.type.tensor_type.shape.dim, shape):
        dim.ClearField("dim_param")
        dim.dim_value = value
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)}
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    total = 0.0
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            w = inits.get(node.input[1] if node.op_type != "QLinearConv" else node.input[3])
            out = shapes.get(node.output[0])
            if w and out:
                total += 2.0 * np.prod(out) * np.prod(w[1:])
        elif node.op_type in ("Gemm", "MatMul"):
            w = inits.get(node.input[1])
            out = shapes.get(node.output[0])
            if w and out:
                total += 2.0 * np.prod(out) * w[0]
    return float(total)


def time_calls(call, repeats: int) -> dict:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000.0)
    return {"p50_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90))}


def time_runs(engine, x: np.ndarray, repeats: int) -> dict:
    return time_calls(lambda: engine.run(x), repeats)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    peaks = {t: peak_flops(t) for t in (1, 2)}
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (*FRAME_HW, 3), dtype=np.uint8)
    rows = []
    entries = list_models()
    onnx_fp32 = {e.family: e.path for e in entries if e.format == "onnx" and e.precision == "fp32"}
    for e in entries:
        for threads in (1, 2):
            engine = open_engine(e.path, threads=threads)
            info = engine.info
            if info.kind == "global":
                for size in GEM_SIZES:
                    sized = replace(info, input_size=size)
                    x = preprocess(frame, sized)
                    flops = onnx_flops(onnx_fp32[e.family], x.shape) if e.family in onnx_fp32 else None
                    r = time_runs(engine, x, args.repeats)
                    rows.append({"model": e.name, "kind": "global", "format": e.format, "precision": e.precision,
                                 "threads": threads, "input": list(x.shape), "long_side": size, **r,
                                 "gflops_per_frame": flops / 1e9 if flops else None,
                                 "share_of_peak": (flops / (r["p50_ms"] / 1000)) / peaks[threads] if flops else None,
                                 "default_size": size == info.input_size})
            else:
                patches = rng.integers(0, 255, (PATCH_BATCH, *info.fixed_size), dtype=np.uint8)
                x = np.zeros((PATCH_BATCH, 1, *info.fixed_size), np.float32)
                flops = onnx_flops(onnx_fp32[e.family], x.shape) if e.family in onnx_fp32 else None
                describer = LocalDescriber(engine)
                r = time_calls(lambda: describer.describe_patches(patches), max(5, args.repeats // 3))
                rows.append({"model": e.name, "kind": "local", "format": e.format, "precision": e.precision,
                             "threads": threads, "input": list(x.shape), **r,
                             "patches_per_s": PATCH_BATCH / (r["p50_ms"] / 1000),
                             "gflops_per_frame": flops / 1e9 / PATCH_BATCH if flops else None,
                             "share_of_peak": (flops / (r["p50_ms"] / 1000)) / peaks[threads] if flops else None})
            print(rows[-1]["model"], threads, round(rows[-1]["p50_ms"], 2), flush=True)
    if CORAL.is_file():
        coral_info = ModelInfo(name="coral-mobilenet-v2", kind="global", output_dim=1001, fixed_size=(224, 224),
                               mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), layout="NHWC")
        for threads in (1, 2):
            engine = open_engine(CORAL, threads=threads, info=coral_info)
            x = preprocess(frame, coral_info)
            r = time_runs(engine, x, args.repeats)
            rows.append({"model": "peer: coral mobilenet_v2_1.0_224_quant.tflite", "kind": "peer", "format": "tflite",
                         "precision": "int8", "threads": threads, "input": list(x.shape), **r,
                         "gflops_per_frame": 0.6, "gflops_note": "published: 300M multiply-adds",
                         "share_of_peak": (0.6e9 / (r["p50_ms"] / 1000)) / peaks[threads]})
    sizes = [{"model": e.name, "bytes": e.path.stat().st_size} for e in entries]
    save(args.out, {"peak_gflops": {str(t): v / 1e9 for t, v in peaks.items()}, "frame": list(FRAME_HW), "rows": rows,
                    "sizes": sizes})


if __name__ == "__main__":
    main()
