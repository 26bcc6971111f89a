"""placekit: on-device visual localization. See README.md and DESIGN.md."""
from ._version import __version__
from .builder import MapBuilder
from .errors import *  # noqa: F401,F403  (the exception types are public API)
from .localizer import Localizer
from .models import list_models
from .options import BuildOptions, LocalizerOptions
from .tracking import Tracker, TrackerOptions
from .types import Localization, Location, Match, Pose, Prior

__all__ = ["__version__", "MapBuilder", "Localizer", "BuildOptions", "LocalizerOptions",
           "Location", "Localization", "Match", "Pose", "Prior", "Tracker", "TrackerOptions", "list_models"]
