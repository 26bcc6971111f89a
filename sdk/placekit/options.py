"""Options: frozen, typed dataclasses. ``from_dict`` rejects unknown fields; presets cover the
common trade-offs."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Optional, TypeVar

import numpy as np

from placekit.errors import OptionsError

T = TypeVar("T")
BACKENDS = ("auto", "onnx", "litert")
DESCRIPTORS = ("auto", "gem", "vlad")
DEFAULT_MATCH_RADIUS_M = 25.0  # two images within this distance show the same place
DEFAULT_TARGET_PRECISION = 0.9  # precision of ``localized`` the calibration aims for
DEFAULT_MAX_KEYPOINTS = 1024  # local features stored per map image
DEFAULT_LOCAL_MAX_SIDE = 640  # long side (pixels) local features are found at
# local features extracted per frame (at most the map's per image). 512 of a map's 1,024: a verified
# localize with a pose in 59-66 ms p50 on 2 cores against 84-95 ms with all 1,024, poses 10.0 / 12.1
# mm on Strecha / KITTI against 8.7 / 10.1 (docs/models.md, "Verified localize in 59-66 ms")
DEFAULT_QUERY_KEYPOINTS = 512
# local features of ``local_features="auto"``: HardNet-C16 equals HardNet on the generalization
# suite and on poses at a quarter of its multiply-adds (docs/models.md)
DEFAULT_LOCAL_MODEL = "hardnet-c16-int8"
# local features of VLAD maps that name none: the model the shipped VLAD vocabulary was learned with
DEFAULT_VLAD_LOCAL_MODEL = "hardnet-int8"
DEFAULT_TOP_K = 5  # matches returned and fused per frame
LOCAL_DETECTORS = ("sift", "orb")
DEFAULT_LOCAL_DETECTOR = "sift"
VLAD_VOCABULARIES = ("shipped", "map")
TOP_K_RANGE = (1, 100)


def _from_dict(cls: type[T], values: dict[str, Any]) -> T:
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise OptionsError(f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
    return cls(**values)


MAX_THREADS = 256
SEARCH_PARAM_RANGES = {"k": (1, 100_000), "nprobe": (1, 1 << 20), "rerank": (0, 1 << 20), "ef": (1, 1 << 16)}
MAX_KEYPOINTS_RANGE = (16, 8192)
LOCAL_MAX_SIDE_RANGE = (64, 4096)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise OptionsError(message)


def is_integer(value: Any) -> bool:
    """An int or numpy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(float(value))
    )


def _typed(
    options: Any,
    ints: dict[str, tuple[int, int]],
    numbers: tuple[str, ...] = (),
    strings: tuple[str, ...] = (),
    bools: tuple[str, ...] = (),
    optional_ints: Optional[dict[str, tuple[int, int]]] = None,
) -> None:
    """Check the types (and integer ranges) of an options dataclass's fields, in one place, and
    store numpy scalars as Python ones. Raises ``OptionsError`` naming the field."""
    cls = type(options).__name__
    optional_ints = optional_ints or {}
    for name, (lo, hi) in {**ints, **optional_ints}.items():
        value = getattr(options, name)
        if value is None and name in optional_ints:
            continue
        _check(is_integer(value), f"{cls}.{name} must be an integer, got {value!r}")
        _check(lo <= int(value) <= hi, f"{cls}.{name} must be within {lo}..{hi}, got {value}")
        object.__setattr__(options, name, int(value))
    for name in numbers:
        value = getattr(options, name)
        _check(_is_number(value), f"{cls}.{name} must be a finite number, got {value!r}")
        object.__setattr__(options, name, float(value))
    for name in strings:
        value = getattr(options, name)
        _check(isinstance(value, str) and bool(value), f"{cls}.{name} must be a non-empty string, got {value!r}")
    for name in bools:
        value = getattr(options, name)
        _check(isinstance(value, (bool, np.bool_)), f"{cls}.{name} must be True or False, got {value!r}")
        object.__setattr__(options, name, bool(value))


def _names(options: Any, name: str) -> tuple[str, ...]:
    """A tuple of names from a sequence of strings (one string is one name, not its characters)."""
    value = getattr(options, name)
    if isinstance(value, str):
        value = (value,)
    _check(
        isinstance(value, (tuple, list)) and all(isinstance(v, str) and v for v in value),
        f"{type(options).__name__}.{name} must be a sequence of non-empty strings, got {value!r}",
    )
    return tuple(value)


@dataclass(frozen=True)
class RuntimeOptions:
    """Where models run, shared by ``BuildOptions`` and ``LocalizerOptions``.

    backend: ``auto`` (from the model file), ``onnx`` or ``litert``. threads: inference
    threads (0 = the backend's default). providers: ONNX Runtime execution providers in
    priority order (e.g. ``("CUDAExecutionProvider", "CPUExecutionProvider")``; default CPU).
    delegates: LiteRT delegate libraries to load (NPU / GPU).
    """

    backend: str = "auto"
    threads: int = 0
    providers: tuple[str, ...] = ()
    delegates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _typed(self, ints={"threads": (0, MAX_THREADS)}, strings=("backend",))
        _check(self.backend in BACKENDS, f"backend must be one of {BACKENDS}, got {self.backend!r}")
        object.__setattr__(self, "providers", _names(self, "providers"))
        object.__setattr__(self, "delegates", _names(self, "delegates"))

    @property
    def runtime(self) -> RuntimeOptions:
        """Just the runtime fields (of a BuildOptions or LocalizerOptions too)."""
        return RuntimeOptions(self.backend, self.threads, self.providers, self.delegates)

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``placekit.inference.engine.open_engine``."""
        return {
            "backend": self.backend,
            "threads": self.threads,
            "providers": self.providers or None,
            "delegates": self.delegates or None,
        }


@dataclass(frozen=True)
class BuildOptions(RuntimeOptions):
    """How ``MapBuilder`` builds a map (and, from ``RuntimeOptions``, where its models run).

    descriptor: global descriptor kind: ``gem`` (the global model), ``vlad`` (compact VLAD of
    the local features; a vocabulary of ``vlad_words`` words is learned at build and stored;
    implies local features, ``DEFAULT_VLAD_LOCAL_MODEL`` (``hardnet-int8``, which the shipped
    vocabulary was learned with) unless ``local_features`` names another), or
    ``auto`` (the default): GeM. (It chose VLAD for maps whose images all had local features
    until the generalization suite, ``benchmarks/generalization.py``, showed VLAD losing to
    GeM on unseen outdoor landmarks and indoor frames; VLAD is now opt-in.)
    model: shipped model name or a model path (the global model, for ``gem``).
    recipe: index recipe (see ``placekit.index.ivf``) or ``auto``. match_radius_m: two images
    within this distance show the same place (calibration, fusion). target_precision: the
    precision the ``localized`` decision is calibrated to on the map's own images.
    embed_model: store the model inside the map (one-file deployment).
    nprobe / rerank: the map's search defaults (``LocalizerOptions`` can override them):
    inverted lists probed per query (None: ``placekit.index.ivf.default_nprobe``, 16 up to
    16,384 lists, one in 1,024 beyond) and candidates re-ranked exactly.
    local_features: ``auto`` (the default: ``DEFAULT_LOCAL_MODEL``, ``hardnet-c16-int8``, for
    the images that come with a camera, none for the others), ``none``, ``rootsift`` (OpenCV) or
    a local model name / path (e.g. ``hardnet-int8``): keypoints and descriptors of every map
    image are stored for geometric verification, and 3D points are triangulated from images with
    poses and intrinsics.
    max_keypoints / local_max_side: per-image keypoint cap and the long side (pixels) they are
    found at. The map records both; its queries are described at the same side.
    local_detector: the keypoint detector, ``sift`` or ``orb`` (``placekit.local.extractor``).
    vlad_vocabulary: ``map`` (the default: learned on the map's own local features) or
    ``shipped`` (learned on a generic pool and shipped with the local model, when it has one of
    ``vlad_words`` words; else learned on the map). The shipped one lost on the generalization
    suite (KITTI at dusk 0.56 / 0.48 recall@1 against 0.88 / 0.80), so it is opt-in.
    vlad_whitening: with the shipped vocabulary, also apply the PCA-whitening shipped with it
    (learned on the same pool; VLAD becomes 256-D) when there is one. Off by default: it
    lowered recall@1 on the generalization suite (landmarks_val 0.345 -> 0.209, IE Tower
    0.543 -> 0.400, KITTI dusk 0.56 / 0.48 -> 0.52 / 0.28; ``docs/models.md``).
    """

    descriptor: str = "auto"
    model: str = "default"
    recipe: str = "auto"
    match_radius_m: float = DEFAULT_MATCH_RADIUS_M
    target_precision: float = DEFAULT_TARGET_PRECISION
    embed_model: bool = False
    nprobe: Optional[int] = None
    rerank: int = 128
    seed: int = 0
    local_features: str = "auto"
    max_keypoints: int = DEFAULT_MAX_KEYPOINTS
    local_max_side: int = DEFAULT_LOCAL_MAX_SIDE
    local_detector: str = DEFAULT_LOCAL_DETECTOR
    vlad_vocabulary: str = "map"
    vlad_words: int = 64
    vlad_whitening: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _typed(
            self,
            ints={
                "rerank": SEARCH_PARAM_RANGES["rerank"],
                "seed": (0, 2**32 - 1),
                "max_keypoints": MAX_KEYPOINTS_RANGE,
                "local_max_side": LOCAL_MAX_SIDE_RANGE,
                "vlad_words": (2, 1024),
            },
            numbers=("match_radius_m", "target_precision"),
            strings=("descriptor", "model", "recipe", "local_features"),
            bools=("embed_model", "vlad_whitening"),
            optional_ints={"nprobe": SEARCH_PARAM_RANGES["nprobe"]},
        )
        _check(self.descriptor in DESCRIPTORS, f"descriptor must be one of {DESCRIPTORS}, got {self.descriptor!r}")
        _check(
            not (self.descriptor == "vlad" and self.model != "default"),
            f"model={self.model!r} names a global model, which a VLAD map does not use; choose its local "
            "features with local_features",
        )
        if self.recipe != "auto":  # a bad recipe fails now, not after extraction
            from placekit.errors import PlaceIndexError
            from placekit.index.ivf import Recipe

            try:
                Recipe.parse(self.recipe)
            except PlaceIndexError as exc:
                raise OptionsError(f"recipe: {exc}") from exc
        _check(self.match_radius_m > 0, "match_radius_m must be > 0")
        _check(
            self.vlad_vocabulary in VLAD_VOCABULARIES,
            f"vlad_vocabulary must be one of {VLAD_VOCABULARIES}, got {self.vlad_vocabulary!r}",
        )
        _check(
            self.local_detector in LOCAL_DETECTORS,
            f"local_detector must be one of {LOCAL_DETECTORS}, got {self.local_detector!r}",
        )
        _check(0.0 < self.target_precision < 1.0, "target_precision must be in (0, 1)")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BuildOptions:
        return _from_dict(cls, values)


@dataclass(frozen=True)
class LocalizerOptions(RuntimeOptions):
    """How ``Localizer`` runs (and, from ``RuntimeOptions``, where its models run).

    model: a model path or name to use instead of
    the one the map names (its sha256 must match). top_k: matches returned and fused.
    nprobe / rerank: override the map's search defaults. verify_map: check every member's
    sha256 at open. verify: geometric verification with the map's local features (when it has
    them) of the ``verify_top`` best places. intrinsics: (fx, fy, cx, cy) of the query camera
    in pixels of the frames given, for 6-DoF poses; None assumes the camera of the best map
    image, scaled to the frame. query_keypoints: local features extracted per frame, at most
    as many as the map stores per image (``DEFAULT_QUERY_KEYPOINTS``, 512; None: as many as the
    map stores). Fewer is faster, the map keeps its own: half of a 1,024-keypoint map's count
    took a verified localize from 84-95 to 59-66 ms p50 on 2 cores, poses from 8.7 / 10.1 to
    10.0 / 12.1 mm on Strecha / KITTI (docs/models.md). VLAD maps use the local features their
    descriptor is made of, so this does not apply to them.
    overlap_local_features: when verifying with OpenCV's local features (``rootsift``) and two or
    more threads, extract the frame's local features on a worker thread while the global model
    describes it on the other threads (the same answers; ``timings_ms`` ``local_features`` is
    then the wait for them after the search). Local features of a network (HardNet, dense
    models) always run after the global model: two networks sharing the cores were slower.
    Off runs the stages one after the other on all threads.
    verify_early_exit: verify the ``verify_top`` places in the global order and stop at the
    first one with ``placekit.localizer.DECISIVE_INLIER_FACTOR`` (3) x the map's calibrated
    inlier floor (the places after it report -1 inliers). Off verifies all of them (slower; it
    can find a far place verified nearly as well, an ``ambiguous`` answer, and gives PnP the
    matches of every verified place).
    blas_threads: threads numpy's BLAS may use while ``localize`` runs (``placekit.blas``): 1 (the
    default) keeps OpenBLAS's busy-waiting workers off the cores ONNX Runtime and OpenCV use
    (a verified ``localize`` took 1.4-1.7x less time on 2 cores than with numpy's default).
    The limit is process-wide while ``localize`` runs, as BLAS's thread count is: an application
    doing heavy numpy work on other threads meanwhile may prefer None, which leaves BLAS as it is.
    """

    model: Optional[str] = None
    top_k: int = DEFAULT_TOP_K
    nprobe: Optional[int] = None
    rerank: Optional[int] = None
    verify_map: bool = True
    verify: bool = True
    verify_top: int = 5
    intrinsics: Optional[tuple[float, float, float, float]] = None
    query_keypoints: Optional[int] = DEFAULT_QUERY_KEYPOINTS
    overlap_local_features: bool = True
    verify_early_exit: bool = True
    blas_threads: Optional[int] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        _typed(
            self,
            ints={"top_k": TOP_K_RANGE, "verify_top": (1, 50)},
            optional_ints={
                "nprobe": SEARCH_PARAM_RANGES["nprobe"],
                "rerank": SEARCH_PARAM_RANGES["rerank"],
                "query_keypoints": MAX_KEYPOINTS_RANGE,
                "blas_threads": (1, MAX_THREADS),
            },
            bools=("verify_map", "verify", "overlap_local_features", "verify_early_exit"),
        )
        _check(
            self.model is None or (isinstance(self.model, str) and bool(self.model)),
            f"LocalizerOptions.model must be None or a model name / path, got {self.model!r}",
        )
        if self.intrinsics is not None:
            _check(
                isinstance(self.intrinsics, (tuple, list))
                and len(self.intrinsics) == 4
                and all(_is_number(v) for v in self.intrinsics)
                and self.intrinsics[0] > 0
                and self.intrinsics[1] > 0,
                "intrinsics must be (fx, fy, cx, cy) with positive focal lengths",
            )
            object.__setattr__(self, "intrinsics", tuple(float(v) for v in self.intrinsics))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LocalizerOptions:
        return _from_dict(cls, values)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> LocalizerOptions:
        """``fast`` (fewer probes, short re-rank), ``balanced`` (the map's defaults) or
        ``accurate`` (more probes, long re-rank, more matches fused)."""
        presets = {
            "fast": cls(top_k=3, nprobe=8, rerank=16),
            "balanced": cls(),
            "accurate": cls(top_k=10, nprobe=64, rerank=256),
        }
        if name not in presets:
            raise OptionsError(f"unknown preset {name!r}; choose from {sorted(presets)}")
        return replace(presets[name], **overrides)
