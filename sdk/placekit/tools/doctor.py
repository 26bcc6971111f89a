"""``placekit doctor``: what this device offers and which configuration placekit will use.

Reports CPU (cores, the SIMD features that matter for int8 / fp16 kernels), ONNX Runtime and
its execution providers, LiteRT and the delegate libraries it can load, the installed models,
and the recommended ``LocalizerOptions`` (backend, providers, threads). Nothing is changed.
"""

from __future__ import annotations

import ctypes.util
import importlib.metadata
import os
import platform
from pathlib import Path

# CPU flags worth knowing for inference kernels (x86 / Arm names as /proc/cpuinfo spells them)
CPU_FEATURES = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
    "neon",
    "asimd",
    "asimdhp",
    "asimddp",
    "i8mm",
    "sve",
    "sve2",
)
# ONNX Runtime providers in the order placekit prefers them (fastest first where present)
PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CoreMLExecutionProvider",
    "QNNExecutionProvider",
    "OpenVINOExecutionProvider",
    "DmlExecutionProvider",
    "XnnpackExecutionProvider",
    "CPUExecutionProvider",
)
# LiteRT delegate libraries probed by name (loaded with LocalizerOptions(delegates=(PATH,)))
DELEGATE_LIBRARIES = {
    "edgetpu": "Coral Edge TPU (libedgetpu)",
    "tensorflowlite_gpu_delegate": "GPU delegate (OpenCL / OpenGL)",
    "hexagon_interface": "Qualcomm Hexagon DSP",
}


def cpu_report() -> dict:
    flags: set[str] = set()
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("flags", "features"):
                flags.update(value.split())
            elif key in ("model name", "hardware") and value.strip():
                model = value.strip()
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {
        "machine": platform.machine(),
        "model": model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "features": [f for f in CPU_FEATURES if f in flags],
    }


def onnxruntime_report() -> dict:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return {"available": False, "error": str(exc)}
    return {"available": True, "version": ort.__version__, "providers": list(ort.get_available_providers())}


def litert_report() -> dict:
    try:
        version = importlib.metadata.version("ai-edge-litert")
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return {"available": False, "note": "pip install 'placekit[tflite]' for LiteRT"}
    found = {name: ctypes.util.find_library(name) for name in DELEGATE_LIBRARIES}
    return {
        "available": True,
        "version": version,
        "builtin_delegates": ["XNNPACK (CPU, default)"],
        "delegate_libraries": {DELEGATE_LIBRARIES[k]: v for k, v in found.items() if v},
    }


def recommend(cpu: dict, ort_info: dict, litert_info: dict) -> dict:
    """The configuration ``LocalizerOptions`` should use here, and why."""
    threads = max(1, min(4, cpu["usable_cpus"]))
    if ort_info.get("available"):
        providers = [p for p in PROVIDER_PREFERENCE if p in ort_info["providers"]]
        accel = [p for p in providers if p not in ("CPUExecutionProvider", "XnnpackExecutionProvider")]
        why = (
            f"ONNX Runtime with {accel[0]} (falls back to CPU)"
            if accel
            else "ONNX Runtime on the CPU (the fastest measured CPU backend for the shipped models)"
        )
        return {"backend": "onnx", "providers": providers, "threads": threads, "why": why}
    if litert_info.get("available"):
        return {
            "backend": "litert",
            "providers": [],
            "threads": threads,
            "delegates": [],
            "why": "LiteRT with its built-in XNNPACK CPU delegate (ONNX Runtime is not installed)",
        }
    return {"backend": None, "why": "no inference backend is installed: pip install onnxruntime"}


def report() -> dict:
    from placekit._version import __version__
    from placekit.inference.catalog import list_models

    cpu, ort_info, litert_info = cpu_report(), onnxruntime_report(), litert_report()
    return {
        "placekit": __version__,
        "python": platform.python_version(),
        "os": platform.platform(),
        "cpu": cpu,
        "onnxruntime": ort_info,
        "litert": litert_info,
        "models": [
            {"name": m.name, "format": m.format, "precision": m.precision, "kind": m.kind} for m in list_models()
        ],
        "torch_installed": _installed("torch"),
        "recommended": recommend(cpu, ort_info, litert_info),
    }


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def render(r: dict) -> str:
    cpu, ort_info, lite, rec = r["cpu"], r["onnxruntime"], r["litert"], r["recommended"]
    lines = [
        f"placekit {r['placekit']} on Python {r['python']}, {r['os']}",
        f"cpu          {cpu['model']} ({cpu['machine']}), {cpu['usable_cpus']} of {cpu['logical_cpus']} "
        f"cpus usable; features: {', '.join(cpu['features']) or 'none detected'}",
    ]
    if ort_info["available"]:
        lines.append(f"onnxruntime  {ort_info['version']}; providers: {', '.join(ort_info['providers'])}")
    else:
        lines.append(f"onnxruntime  not available ({ort_info['error']})")
    if lite["available"]:
        libs = ", ".join(f"{k}: {v}" for k, v in lite["delegate_libraries"].items()) or "none found"
        lines.append(f"litert       {lite['version']}; built in: XNNPACK; delegate libraries: {libs}")
    else:
        lines.append(f"litert       not available ({lite['note']})")
    models = ", ".join(f"{m['name']}" for m in r["models"]) or "none"
    lines.append(f"models       {models}")
    lines.append(
        f"torch        {'installed (not needed at run time)' if r['torch_installed'] else 'not installed (not needed)'}"
    )
    if rec["backend"]:
        lines.append(
            f"recommended  LocalizerOptions(backend={rec['backend']!r}, threads={rec['threads']}"
            + (f", providers={tuple(rec['providers'])}" if rec.get("providers") else "")
            + f")\n             {rec['why']}"
        )
    else:
        lines.append(f"recommended  nothing: {rec['why']}")
    return "\n".join(lines)
