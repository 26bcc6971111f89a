"""placekit: on-device visual localization. See README.md and DESIGN.md."""
from placekit._version import __version__
from placekit.builder import MapBuilder
from placekit.errors import *  # noqa: F401,F403  (the exception types are public API)
from placekit.localizer import Localizer
from placekit.inference.catalog import list_models
from placekit.options import BuildOptions, LocalizerOptions
from placekit.tracking import Tracker, TrackerOptions
from placekit.types import Localization, Location, Match, Pose, Prior

__all__ = ["__version__", "MapBuilder", "Localizer", "BuildOptions", "LocalizerOptions",
           "Location", "Localization", "Match", "Pose", "Prior", "Tracker", "TrackerOptions", "list_models"]
