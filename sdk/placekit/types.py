"""Public value types: locations in, localization results out. All frozen dataclasses."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Optional

import numpy as np

from placekit.errors import BuildError, LocationError

Status = Literal["localized", "ambiguous", "unknown"]


def _finite(name: str, value: float | None) -> None:
    if value is not None and not (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(float(value))
    ):
        raise LocationError(f"{name} must be a finite number, got {value!r}")


MAX_NAME_BYTES = 1024
MAX_COORDINATE_M = 1e8  # metres (local frames) or degrees/metres (WGS84): beyond is a unit mistake


def check_place_name(name: object) -> str:
    """A place name: a non-empty str that encodes as UTF-8 (no lone surrogates), at most
    ``MAX_NAME_BYTES`` bytes. Raises ``BuildError``."""
    if not isinstance(name, str) or not name:
        raise BuildError(f"a place name must be a non-empty string, got {name!r}")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BuildError(f"a place name must be valid Unicode text: {exc.reason} at {exc.start}") from exc
    if len(encoded) > MAX_NAME_BYTES:
        raise BuildError(f"a place name may have at most {MAX_NAME_BYTES} bytes, got {len(encoded)}")
    return name


@dataclass(frozen=True)
class Location:
    """Where an image was taken: WGS84 (``lat``, ``lon`` degrees, optional ``alt`` metres) or a
    local metric frame (``x``, ``y``, optional ``z``). Optional ``rotation`` (qw, qx, qy, qz,
    world-to-camera) and ``intrinsics`` (fx, fy, cx, cy in pixels) describe a posed camera."""

    lat: Optional[float] = None
    lon: Optional[float] = None
    alt: Optional[float] = None
    x: Optional[float] = None
    y: Optional[float] = None
    z: Optional[float] = None
    rotation: Optional[tuple[float, float, float, float]] = None
    intrinsics: Optional[tuple[float, float, float, float]] = None

    def __post_init__(self) -> None:
        for name in ("lat", "lon", "alt", "x", "y", "z"):
            value = getattr(self, name)
            _finite(name, value)
            if value is not None:
                if abs(float(value)) > MAX_COORDINATE_M:
                    raise LocationError(f"{name} must be within +-{MAX_COORDINATE_M:g}, got {value!r}")
                object.__setattr__(self, name, float(value))
        geo = self.lat is not None or self.lon is not None
        local = self.x is not None or self.y is not None
        if geo == local:
            raise LocationError("a Location needs either lat/lon (WGS84) or x/y (local), not both or neither")
        if geo:
            if self.lat is None or self.lon is None:
                raise LocationError("a WGS84 Location needs both lat and lon")
            if not -90.0 <= self.lat <= 90.0:
                raise LocationError(f"lat must be within [-90, 90], got {self.lat}")
            if not -180.0 <= self.lon <= 180.0:
                raise LocationError(f"lon must be within [-180, 180], got {self.lon}")
            if self.z is not None:
                raise LocationError("use alt, not z, with lat/lon")
        elif self.x is None or self.y is None:
            raise LocationError("a local Location needs both x and y")
        for name, n in (("rotation", 4), ("intrinsics", 4)):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != n:
                    raise LocationError(f"{name} needs {n} numbers, got {value!r}")
                for v in value:
                    _finite(name, v)
                object.__setattr__(self, name, tuple(float(v) for v in value))
        if self.rotation is not None and not math.isclose(sum(v * v for v in self.rotation), 1.0, rel_tol=1e-2):
            raise LocationError("rotation must be a unit quaternion (qw, qx, qy, qz)")
        if self.intrinsics is not None and (self.intrinsics[0] <= 0 or self.intrinsics[1] <= 0):
            raise LocationError("focal lengths fx, fy must be positive")

    @property
    def is_wgs84(self) -> bool:
        return self.lat is not None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Prior:
    """Where the camera roughly is: ``localize`` then searches only the map places within
    ``radius_m`` (horizontal distance) of ``location``. Faster on large maps; a wrong prior
    makes the answer wrong or ``unknown``, never an error."""

    location: Location
    radius_m: float

    def __post_init__(self) -> None:
        if not isinstance(self.location, Location):
            raise LocationError(f"Prior.location must be a placekit.Location, got {type(self.location).__name__}")
        _finite("radius_m", self.radius_m)
        if self.radius_m <= 0:
            raise LocationError(f"Prior.radius_m must be > 0, got {self.radius_m}")


@dataclass(frozen=True)
class Match:
    """One retrieved map place: its id, image name, similarity score, location and, when the
    map has local features, the geometrically verified inlier count (-1: not verified, the place
    has no local features or verification ended early at a decisive place before it; None:
    beyond the verified places)."""

    place_id: int
    name: str
    score: float
    location: Location
    inliers: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "place_id": self.place_id,
            "name": self.name,
            "score": round(self.score, 6),
            "location": self.location.to_dict(),
        }
        if self.inliers is not None:
            out["inliers"] = self.inliers
        return out


@dataclass(frozen=True)
class Pose:
    """Camera pose in the map frame: world-to-camera ``rotation`` (qw, qx, qy, qz),
    ``translation`` (t in x_cam = R x_world + t) and camera ``center`` in the map frame."""

    rotation: tuple[float, float, float, float]
    translation: tuple[float, float, float]
    center: tuple[float, float, float]


@dataclass(frozen=True)
class Localization:
    """The answer of ``Localizer.localize``.

    status: ``localized`` (a confident answer), ``ambiguous`` (similar places far apart),
    ``unknown`` (no map place looks like the frame). ``location`` is None for unknown.
    ``uncertainty_m``: 1-sigma radius of the position estimate. ``confidence`` in [0, 1]:
    the calibrated share of correct answers at this score. ``timings_ms``: per stage.
    """

    status: Status
    location: Optional[Location]
    uncertainty_m: Optional[float]
    confidence: float
    matches: tuple[Match, ...] = ()
    pose: Optional[Pose] = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "location": self.location.to_dict() if self.location else None,
            "uncertainty_m": None if self.uncertainty_m is None else round(self.uncertainty_m, 3),
            "confidence": round(self.confidence, 4),
            "matches": [m.to_dict() for m in self.matches],
            "pose": asdict(self.pose) if self.pose else None,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


@dataclass(frozen=True)
class MapInfo:
    """What a map file holds (``MapBuilder.build``, ``Localizer.info``, ``placekit map info``).

    places: live places. descriptor: ``{"kind": "gem" | "vlad", "dim": D[, "words": K]}``.
    model: ``{"name", "sha256", "embedded"}`` of the global model (the local model for VLAD).
    frame: ``{"kind": "wgs84", "origin": {...}}`` for WGS84 maps, None for local ones.
    extent_m: (3,) size of the places' bounding box. index: ``{"recipe", "dim", "search"}``.
    calibration: the decision thresholds and how they were fitted (``docs/calibration.md``).
    warnings: what calibration could not promise. local: the local-feature section (extractor,
    keypoints, triangulation, bytes) or None. runtime: how a ``Localizer`` runs the map
    (backend, threads, providers, verification), None from ``build`` / ``map info``.
    """

    path: Optional[str]
    format_version: Optional[int]
    library_version: Optional[str]
    created_utc: Optional[str]
    places: int
    descriptor: dict[str, Any]
    model: dict[str, Any]
    frame: Optional[dict[str, Any]]
    extent_m: tuple[float, float, float]
    index: dict[str, Any]
    calibration: dict[str, Any]
    warnings: tuple[str, ...]
    local: Optional[dict[str, Any]]
    file_bytes: Optional[int]
    bytes_per_place: Optional[float]
    user: dict[str, Any]
    runtime: Optional[dict[str, Any]] = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (``placekit map info --json``)."""
        out = asdict(self)
        out["extent_m"], out["warnings"] = list(self.extent_m), list(self.warnings)
        if self.runtime is None:
            del out["runtime"]
        return out
