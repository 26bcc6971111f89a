"""Exception types. Every error placekit raises derives from ``PlacekitError`` and from the
built-in exception a caller would catch for the same problem."""

from __future__ import annotations

__all__ = [
    "PlacekitError",
    "MapFormatError",
    "ModelMismatchError",
    "ModelNotFoundError",
    "ModelFormatError",
    "BackendUnavailableError",
    "InvalidImageError",
    "ImageReadError",
    "LocationError",
    "CSVFormatError",
    "OptionsError",
    "PlaceIndexError",
    "BuildError",
    "ClusterError",
    "ClosedError",
    "MapWriteError",
    "CalibrationWarning",
]


class PlacekitError(Exception):
    """Base class of every placekit error."""


class MapFormatError(PlacekitError, ValueError):
    """A map file is truncated, tampered with, from an unsupported version, or inconsistent."""


class ModelMismatchError(MapFormatError):
    """A map was built with another model than the one it is being opened with."""


class ModelNotFoundError(PlacekitError, FileNotFoundError):
    """A model name or file could not be found."""


class ModelFormatError(PlacekitError, ValueError):
    """A model file is unreadable or lacks the metadata placekit needs."""


class BackendUnavailableError(PlacekitError, ImportError):
    """The requested inference backend (ONNX Runtime, LiteRT) is not installed or usable."""


class InvalidImageError(PlacekitError, ValueError):
    """A frame has the wrong dtype, shape or channel count, is empty, or holds NaN / inf."""


class ImageReadError(PlacekitError, OSError):
    """An image file is missing, unreadable or corrupt."""


class LocationError(PlacekitError, ValueError):
    """A location is missing, non-finite or out of range."""


class CSVFormatError(PlacekitError, ValueError):
    """A locations CSV has missing columns, bad values or duplicate names; names the line."""


class OptionsError(PlacekitError, ValueError):
    """An options dataclass got an unknown field or an invalid value."""


class PlaceIndexError(PlacekitError, ValueError):
    """An index operation got inconsistent input (wrong dimension, unknown id, untrained index)."""


class BuildError(PlacekitError, RuntimeError):
    """A map could not be built from the given images and locations."""


class ClusterError(BuildError, ConnectionError):
    """A distributed build could not start, reach its Ray cluster, or finish a task."""


class ClosedError(PlacekitError, RuntimeError):
    """The Localizer was closed."""


class MapWriteError(PlacekitError, OSError):
    """A map file could not be written (read-only folder, immutable file, full disk, a path
    under a file). The previous file at that path, if any, is left as it was."""


class CalibrationWarning(UserWarning):
    """A map was built, but its calibration cannot promise the target precision (too few
    matches among its own images, or the target never reached): expect wrong ``localized``
    answers. ``MapBuilder.build`` issues it; the messages are also in ``MapInfo.warnings``."""
