"""Opening the models a map needs: the global descriptor model and the local-feature
extractor, found through the map's ``ModelRef``s (``placekit.inference.catalog``) and checked
against what the map was built with."""

from __future__ import annotations

from placekit.errors import MapFormatError, ModelMismatchError, ModelNotFoundError
from placekit.inference.catalog import ModelRef, locate_model, resolve_model
from placekit.inference.engine import Engine, open_engine
from placekit.inference.extractors import DenseDescriber, LocalDescriber
from placekit.local.extractor import DETECTORS, LocalFeatureExtractor
from placekit.mapfile.placemap import PlaceMap
from placekit.options import LOCAL_MAX_SIDE_RANGE, MAX_KEYPOINTS_RANGE, RuntimeOptions

ROOTSIFT = "rootsift"


def local_extractor(
    name: str, max_keypoints: int, max_side: int, runtime: RuntimeOptions, spin: bool = True, detector: str = "sift"
) -> tuple[LocalFeatureExtractor, ModelRef]:
    """A local-feature extractor by name (``rootsift`` or a local model name / path) and the
    reference a map stores for it."""
    if name == ROOTSIFT:
        return LocalFeatureExtractor(None, max_keypoints, max_side), ModelRef(ROOTSIFT, None)
    path = resolve_model(name)
    engine = open_engine(path, **runtime.engine_kwargs(), spin=spin)
    extractor = LocalFeatureExtractor(_describer(engine), max_keypoints, max_side, detector)
    return extractor, ModelRef.of_file(extractor.name, path, engine.sha256)


def open_global_model(
    placemap: PlaceMap, model: str | None, runtime: RuntimeOptions, source: str, spin: bool = True
) -> Engine:
    """The engine of the map's global model: ``model`` (a name or path) when given, else the
    copy embedded in the map, else the file ``locate_model`` finds. Raises
    ``ModelNotFoundError`` / ``ModelMismatchError``."""
    ref = ModelRef.from_global_section(placemap.model)
    kwargs = dict(runtime.engine_kwargs(), spin=spin)
    if model:
        engine = open_engine(resolve_model(model), **kwargs)
    elif placemap.model_bytes is not None:
        engine = open_engine(bytes(placemap.model_bytes), **kwargs)
    else:
        path = locate_model(ref, source)
        if path is None:
            try:
                path = resolve_model(ref.name)
            except ModelNotFoundError:
                raise ModelNotFoundError(
                    f"{source} was built with model {ref.name!r} (sha256 {str(ref.sha256)[:12]}...), which is not "
                    "installed; pass LocalizerOptions(model=PATH) or rebuild with embed_model=True"
                ) from None
        engine = open_engine(path, **kwargs)
    if engine.sha256 != ref.sha256 and not _same_model_other_format(placemap, engine):
        raise ModelMismatchError(
            f"{source} was built with model {ref.name!r} (sha256 {str(ref.sha256)[:12]}...) but the model "
            f"given is {engine.info.name!r} (sha256 {engine.sha256[:12]}...): descriptors would not be comparable"
        )
    if engine.info.output_dim != int(placemap.descriptor["dim"]):
        raise ModelMismatchError(
            f"{source} holds {placemap.descriptor['dim']}-D descriptors; model "
            f"{engine.info.name!r} gives {engine.info.output_dim}-D"
        )
    return engine


def open_local_extractor(
    placemap: PlaceMap, runtime: RuntimeOptions, source: str, spin: bool = True
) -> LocalFeatureExtractor:
    """The local-feature extractor the map was built with, with its keypoint settings."""
    if placemap.pointmap is None:
        raise MapFormatError(f"{source}: the map has no local features")
    section = placemap.pointmap.section
    max_keypoints, max_side = section.get("max_keypoints"), section.get("max_side")
    if not (
        isinstance(max_keypoints, int)
        and MAX_KEYPOINTS_RANGE[0] <= max_keypoints <= MAX_KEYPOINTS_RANGE[1]
        and isinstance(max_side, int)
        and LOCAL_MAX_SIDE_RANGE[0] <= max_side <= LOCAL_MAX_SIDE_RANGE[1]
    ):
        raise MapFormatError(f"{source}: local.max_keypoints / max_side out of range ({max_keypoints!r}, {max_side!r})")
    ref = ModelRef.from_local_section(section)
    if ref.name == ROOTSIFT:
        return LocalFeatureExtractor(None, max_keypoints, max_side)
    path = locate_model(ref, source)
    if path is None:
        raise ModelNotFoundError(
            f"{source} was built with local model {ref.name!r} (sha256 {str(ref.sha256)[:12]}...), "
            "which is not installed; open with LocalizerOptions(verify=False) to localize "
            "without verification"
        )
    engine = open_engine(path, **runtime.engine_kwargs(), spin=spin)
    detector = section.get("detector", "sift")  # maps written before the setting used SIFT
    if detector not in DETECTORS:
        raise MapFormatError(f"{source}: unknown local.detector {detector!r} (this placekit knows {DETECTORS})")
    return LocalFeatureExtractor(_describer(engine), max_keypoints, max_side, detector)


def _describer(engine: Engine) -> LocalDescriber | DenseDescriber:
    """A patch describer for a ``local`` model, a dense one for a ``dense`` model."""
    return DenseDescriber(engine) if engine.info.kind == "dense" else LocalDescriber(engine)


def _same_model_other_format(placemap: PlaceMap, engine: Engine) -> bool:
    """A map built with one export of a model may run on another export (LiteRT, int8) of the
    same checkpoint: same name and checkpoint sha256 in the metadata."""
    info = placemap.model.get("info", {})
    checkpoint = info.get("placekit.checkpoint_sha256")
    return (
        bool(checkpoint)
        and checkpoint == engine.info.checkpoint_sha256
        and info.get("placekit.name") == engine.info.name
    )
