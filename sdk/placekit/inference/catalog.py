"""Shipped models, found by name.

Each model family lives in a folder of the ``placekit_models`` package (the repository's
``models/``) with ``card.json`` (machine-readable card) and ``CARD.md``. Extra folders can be
listed in the ``PLACEKIT_MODELS`` environment variable (``os.pathsep``-separated). A model is
named by its file name, e.g. ``gem-imagenet-fp32.tflite``; the stem alone (``gem-imagenet-fp32``)
selects the ONNX file, and a family name (``gem-imagenet``) its ONNX fp32 file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from placekit.errors import ModelNotFoundError
from placekit.index.quantize import PCAWhitening
from placekit.inference.engine import sha256_file

# The default is the ImageNet GeM in fp32. Its int8 export (``gem-imagenet-int8``: a quarter
# of the size, faster, same retrieval on clean real photos) loses robustness on degraded frames:
# on the KITTI tracking benchmark (quarter resolution, blur, dark, occlusion) 0.56 of answers
# fall within 5 m with Tracker + odometry against 0.70 for fp32 (benchmarks/RESULTS.md). The
# trained ``gem`` family rejects unseen places less often and has no int8 file.
DEFAULT_MODEL = "gem-imagenet-fp32"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    kind: str
    format: str
    precision: str
    path: Path
    card: Path
    sha256: str


def model_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("PLACEKIT_MODELS", "").split(os.pathsep) if p]
    try:
        from importlib.resources import files

        dirs.append(Path(str(files("placekit_models"))))
    except (ImportError, ModuleNotFoundError, TypeError):
        pass
    return dirs


def list_models() -> list[ModelEntry]:
    """Every model file described by a ``card.json`` in the model folders."""
    entries = []
    for root in model_dirs():
        for card_json in sorted(root.glob("*/card.json")) if root.is_dir() else []:
            try:
                card = json.loads(card_json.read_text())
                for f in card.get("files", []):
                    path = card_json.parent / f["file"]
                    if path.is_file():
                        entries.append(
                            ModelEntry(
                                name=Path(f["file"]).name,
                                family=card["name"],
                                kind=card["kind"],
                                format=f["format"],
                                precision=f["precision"],
                                path=path,
                                card=card_json.parent / "CARD.md",
                                sha256=f.get("sha256", ""),
                            )
                        )
            except (OSError, ValueError, KeyError, TypeError):
                continue  # an unreadable card hides its model rather than breaking the listing
    return entries


def resolve_model(name_or_path: str) -> Path:
    """A model file path from a path, a model name, a family name or ``default``."""
    if name_or_path in ("", "default"):
        name_or_path = DEFAULT_MODEL
    path = Path(name_or_path)
    entries = list_models()
    if path.is_file() and (path.suffix in (".onnx", ".tflite") or os.sep in name_or_path):
        return path
    if os.sep in name_or_path:
        raise ModelNotFoundError(f"model file {path} does not exist")
    for e in entries:
        if e.name == name_or_path:
            return e.path
    for e in entries:
        if e.path.stem == name_or_path and e.format == "onnx":
            return e.path
    for e in entries:
        if e.family == name_or_path and e.format == "onnx" and e.precision == "fp32":
            return e.path
    names = ", ".join(sorted(e.name for e in entries)) or "none installed"
    raise ModelNotFoundError(f"no model named {name_or_path!r}; available: {names}")


def find_model_by_sha256(sha256: str) -> Path | None:
    for e in list_models():
        if e.sha256 == sha256:
            return e.path
    return None


@dataclass(frozen=True)
class ModelRef:
    """How a map names a model it was built with: its name, sha256, file name and the path it
    had at build time. The map file stores it in two sections (see ``docs/map-format.md``):
    the global model as ``model: {name, sha256, file, path_hint}`` and the local model inside
    the ``local`` section as ``extractor, model_sha256, model_file, model_path_hint``; these two
    spellings are the format's and stay, and this class is the one place that reads and
    writes both."""

    name: str
    sha256: str | None
    file: str | None = None
    path_hint: str | None = None

    @classmethod
    def of_file(cls, name: str, path: Path, sha256: str) -> ModelRef:
        return cls(name, sha256, path.name, str(path.resolve()))

    @classmethod
    def from_global_section(cls, section: dict) -> ModelRef:
        return cls(str(section.get("name", "")), section.get("sha256"), section.get("file"), section.get("path_hint"))

    def to_global_section(self) -> dict:
        return {"name": self.name, "file": self.file, "sha256": self.sha256, "path_hint": self.path_hint}

    @classmethod
    def from_local_section(cls, section: dict) -> ModelRef:
        return cls(
            str(section.get("extractor", "")),
            section.get("model_sha256"),
            section.get("model_file"),
            section.get("model_path_hint"),
        )

    def to_local_section(self) -> dict:
        out: dict = {"model_sha256": self.sha256}
        if self.sha256:
            out.update(model_file=self.file, model_path_hint=self.path_hint)
        return out


def locate_model(ref: ModelRef, map_path: str | os.PathLike | None = None) -> Path | None:
    """The file of a model a map names, found by its sha256: a shipped model, then a file of
    the same name beside the map, then the path it had at build time. None if none matches."""
    if not ref.sha256:
        return None
    shipped = find_model_by_sha256(ref.sha256)
    if shipped is not None:
        return shipped
    candidates = []
    if ref.file and map_path is not None:
        candidates.append(Path(map_path).parent / Path(ref.file).name)
    if ref.path_hint:
        candidates.append(Path(ref.path_hint))
    for path in candidates:
        if path.is_file() and sha256_file(path) == ref.sha256:
            return path
    return None


def shipped_vocabulary(local_model: Path, words: int, dim: int) -> tuple[np.ndarray, str] | None:
    """The VLAD vocabulary shipped beside a local model file: an entry of its folder's
    ``card.json`` ``vlad_vocabularies`` naming that file, with ``words`` words of ``dim``
    dimensions and a matching sha256. Returns ((words, dim) float32, its file name) or None."""
    found = shipped_vlad(local_model, words, dim)
    return None if found is None else (found[0], found[1])


def shipped_vlad(local_model: Path, words: int, dim: int) -> tuple[np.ndarray, str, PCAWhitening | None] | None:
    """``shipped_vocabulary`` and the PCA-whitening its card entry names (``whitening``: an
    ``.npz`` of ``mean`` (words * dim,) and ``projection`` (words * dim, d) float32 with its
    sha256), None for the whitening when the entry has none or its file does not check out.
    Returns (vocabulary, its file name, whitening) or None."""
    card_path = Path(local_model).parent / "card.json"
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError):
        return None
    for entry in card.get("vlad_vocabularies", []) if isinstance(card, dict) else []:
        if not isinstance(entry, dict) or entry.get("local_model") != Path(local_model).name:
            continue
        if entry.get("words") != words:
            continue
        path = _verified_file(card_path.parent, entry)
        try:
            vocabulary = np.load(path, allow_pickle=False) if path else None
        except (OSError, ValueError):
            continue
        if isinstance(vocabulary, np.ndarray) and vocabulary.shape == (words, dim) and np.isfinite(vocabulary).all():
            whitening = _shipped_whitening(card_path.parent, entry.get("whitening"), words * dim)
            return np.asarray(vocabulary, np.float32), str(entry["file"]), whitening
    return None


def _verified_file(folder: Path, entry: object) -> Path | None:
    """The file a card entry's ``file`` names in ``folder`` when its sha256 matches, else None."""
    if not isinstance(entry, dict):
        return None
    path = folder / str(entry.get("file", ""))
    return path if path.is_file() and sha256_file(path) == entry.get("sha256") else None


def _shipped_whitening(folder: Path, entry: object, vlad_dim: int) -> PCAWhitening | None:
    """The whitening a vocabulary entry names, checked: mean (vlad_dim,), projection
    (vlad_dim, d), finite; None otherwise."""
    path = _verified_file(folder, entry)
    if path is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            mean, projection = np.asarray(z["mean"], np.float32), np.asarray(z["projection"], np.float32)
    except (OSError, ValueError, KeyError):
        return None
    if mean.shape != (vlad_dim,) or projection.ndim != 2 or projection.shape[0] != vlad_dim:
        return None
    if not (np.isfinite(mean).all() and np.isfinite(projection).all()):
        return None
    return PCAWhitening(mean, projection)
