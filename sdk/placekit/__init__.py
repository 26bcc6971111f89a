"""placekit: on-device visual localization.

Build a map from images with locations (``MapBuilder``), then ask where a frame was taken
(``Localizer.localize``), one frame at a time or over a video (``Tracker``). The package
layout is described in ``docs/architecture.md``.
"""

from placekit._version import __version__
from placekit.builder import MapBuilder
from placekit.errors import *  # noqa: F403  (the typed errors are public API)
from placekit.errors import __all__ as _error_names
from placekit.executors import LocalExecutor, RayExecutor
from placekit.inference.catalog import list_models
from placekit.localizer import Localizer
from placekit.options import BuildOptions, LocalizerOptions, RuntimeOptions
from placekit.tracking import Tracker, TrackerOptions
from placekit.types import Localization, Location, MapInfo, Match, Pose, Prior

__all__ = [
    "__version__",
    "MapBuilder",
    "BuildOptions",
    "LocalExecutor",
    "RayExecutor",
    "Localizer",
    "LocalizerOptions",
    "RuntimeOptions",
    "Tracker",
    "TrackerOptions",
    "Location",
    "Prior",
    "Localization",
    "Match",
    "Pose",
    "MapInfo",
    "list_models",
    *_error_names,
]
