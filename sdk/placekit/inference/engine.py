"""Inference engines: one interface over ONNX Runtime and LiteRT.

``open_engine(path_or_bytes, backend=..., threads=...)`` returns an ``Engine`` whose ``info``
(``ModelInfo``) comes from the model file itself and whose ``run(x)`` maps one preprocessed
batch to descriptors. ``Engine.run`` is safe to call from several threads.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from placekit.errors import BackendUnavailableError, ModelFormatError, ModelNotFoundError
from placekit.inference.modelinfo import ModelInfo
from placekit.inference.tflite_metadata import read_tflite_metadata
from placekit.options import BACKENDS


class Engine(Protocol):
    info: ModelInfo
    sha256: str
    backend: str
    fixed_batch: int | None  # the only batch size the model takes, or None when any works

    def run(self, x: np.ndarray) -> np.ndarray:
        """(B, ...) float32 input -> (B, D) float32 output."""
        ...


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_model_bytes(model: str | Path | bytes) -> tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "<embedded model>"
    path = Path(model)
    if not path.is_file():
        raise ModelNotFoundError(f"model file {path} does not exist")
    data = path.read_bytes()
    if not data:
        raise ModelFormatError(f"model file {path} is empty")
    return data, str(path)


def detect_backend(data: bytes) -> str:
    """'litert' for a TFLite flatbuffer (identifier TFL3 at offset 4), else 'onnx'."""
    return "litert" if data[4:8] == b"TFL3" else "onnx"


def open_engine(
    model: str | Path | bytes,
    backend: str = "auto",
    threads: int = 0,
    providers: Sequence[str] | None = None,
    delegates: Sequence[str] | None = None,
    info: ModelInfo | None = None,
    spin: bool = True,
) -> Engine:
    """Open a model file (or its bytes) on ONNX Runtime or LiteRT.

    threads: intra-op threads, 0 = the backend's default. providers: ONNX Runtime execution
    providers in priority order (default CPU). delegates: LiteRT delegate libraries to load.
    info: metadata for a foreign model without placekit metadata (else read from the file).
    spin: let ONNX Runtime's threads keep spin-waiting after a run (its default: fastest for one
    model per frame). Off, they spin between operators during a run and stop at its end
    (``session.force_spinning_stop``), so the next model, OpenCV and NumPy get the cores when
    two models share them in one frame (local features + verification). Measured on 2 cores
    for GeM + SIFT + HardNet-C16 (512 patches): 77-78 ms per frame spinning after runs,
    59-60 ms never spinning, 56-57 ms stopping at the end of each run.
    """
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"backend must be one of {BACKENDS}, got {backend!r}")
    data, source = _read_model_bytes(model)
    kind = detect_backend(data) if backend == "auto" else backend
    if kind == "onnx":
        return OnnxEngine(data, source, threads, providers, info, spin)
    return LiteRTEngine(data, source, threads, delegates, info)


class OnnxEngine:
    """ONNX Runtime session; ``run`` is thread-safe (ORT sessions are)."""

    backend = "onnx"

    def __init__(
        self,
        data: bytes,
        source: str,
        threads: int = 0,
        providers: Sequence[str] | None = None,
        info: ModelInfo | None = None,
        spin: bool = True,
    ):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailableError("ONNX Runtime is not installed: pip install onnxruntime") from exc
        available = ort.get_available_providers()
        wanted = list(providers) if providers else ["CPUExecutionProvider"]
        missing = [p for p in wanted if p not in available]
        if missing:
            raise BackendUnavailableError(
                f"ONNX Runtime providers {missing} are not available here; available: {available}"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(0, int(threads))
        if not spin:
            opts.add_session_config_entry("session.force_spinning_stop", "1")
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data, sess_options=opts, providers=wanted)
        except Exception as exc:  # ORT raises its own non-standard exception types
            raise ModelFormatError(f"{source}: ONNX Runtime cannot load the model: {exc}") from exc
        self.providers = self.session.get_providers()
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info = info or ModelInfo.from_metadata(meta, source)
        self.sha256 = sha256_bytes(data)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        first = self.session.get_inputs()[0].shape[0]
        self.fixed_batch = first if isinstance(first, int) and first > 0 else None
        self.threads = threads

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]


def _litert_interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter, load_delegate

        return Interpreter, load_delegate
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter, load_delegate

        return Interpreter, load_delegate
    except ImportError as exc:
        raise BackendUnavailableError(
            "LiteRT is not installed: pip install 'placekit[tflite]' (ai-edge-litert), "
            "or tflite-runtime (which needs numpy < 2)"
        ) from exc


class LiteRTEngine:
    """LiteRT (TFLite) interpreter. Interpreters are not thread-safe, so ``run`` holds a lock.

    Inputs whose shape differs from the model's current one are resized (dynamic shapes), and
    int8/uint8 tensors are (de)quantized with the tensor's own scale and zero point.
    """

    backend = "litert"

    def __init__(
        self,
        data: bytes,
        source: str,
        threads: int = 0,
        delegates: Sequence[str] | None = None,
        info: ModelInfo | None = None,
    ):
        interpreter_cls, load_delegate = _litert_interpreter_class()
        loaded = []
        for name in delegates or ():
            try:
                loaded.append(load_delegate(name))
            except (OSError, ValueError, RuntimeError) as exc:
                raise BackendUnavailableError(f"cannot load LiteRT delegate {name!r}: {exc}") from exc
        try:
            self.interpreter = interpreter_cls(
                model_content=data,
                num_threads=threads if threads > 0 else None,
                experimental_delegates=loaded or None,
            )
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFormatError(f"{source}: LiteRT cannot load the model: {exc}") from exc
        self.info = info or ModelInfo.from_metadata(read_tflite_metadata(data, source), source)
        self.sha256 = sha256_bytes(data)
        self.threads = threads
        self._lock = threading.Lock()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        # Converted graphs may bake the batch into reshapes; image sizes resize fine.
        self.fixed_batch: int | None = int(self._input["shape"][0])
        self._source = source

    def run(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            inp = self._input
            if tuple(inp["shape"]) != x.shape:
                try:
                    self.interpreter.resize_tensor_input(inp["index"], list(x.shape))
                    self.interpreter.allocate_tensors()
                except (RuntimeError, ValueError) as exc:
                    raise ModelFormatError(
                        f"{self._source}: LiteRT cannot run this model on input shape {x.shape}: {exc}"
                    ) from exc
                self._input = inp = self.interpreter.get_input_details()[0]
                self._output = self.interpreter.get_output_details()[0]
            self.interpreter.set_tensor(inp["index"], _quantize(x, inp))
            self.interpreter.invoke()
            out = self.interpreter.get_tensor(self._output["index"])
            return _dequantize(out, self._output)


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.float32:
        return x.astype(np.float32, copy=False)
    scale, zero = detail["quantization"]
    if scale == 0:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if y.dtype == np.float32:
        return y.copy()
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * (scale or 1.0)).astype(np.float32)
