"""WGS84 <-> a local East-North-Up metric frame anchored at an origin (exact, via ECEF)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from placekit.errors import LocationError
from placekit.types import Location

MIXED_KINDS = "all map locations must be WGS84 (lat/lon) or all local (x/y), not mixed"

A = 6378137.0  # WGS84 semi-major axis (m)
F = 1.0 / 298.257223563  # flattening
E2 = F * (2.0 - F)  # first eccentricity squared


def geodetic_to_ecef(lat: np.ndarray, lon: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """Degrees, degrees, metres -> (N, 3) ECEF metres."""
    lat, lon = np.radians(lat), np.radians(lon)
    n = A / np.sqrt(1.0 - E2 * np.sin(lat) ** 2)
    return np.stack(
        [
            (n + alt) * np.cos(lat) * np.cos(lon),
            (n + alt) * np.cos(lat) * np.sin(lon),
            (n * (1.0 - E2) + alt) * np.sin(lat),
        ],
        axis=-1,
    )


def ecef_to_geodetic(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3) ECEF -> lat, lon (degrees), alt (m); Bowring's method, iterated to sub-mm."""
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    lon = np.arctan2(y, x)
    p = np.hypot(x, y)
    lat = np.arctan2(z, p * (1.0 - E2))
    for _ in range(5):
        n = A / np.sqrt(1.0 - E2 * np.sin(lat) ** 2)
        alt = p / np.maximum(np.cos(lat), 1e-12) - n
        lat = np.arctan2(z, p * (1.0 - E2 * n / (n + alt)))
    n = A / np.sqrt(1.0 - E2 * np.sin(lat) ** 2)
    alt = p / np.maximum(np.cos(lat), 1e-12) - n
    return np.degrees(lat), np.degrees(lon), alt


def _enu_rotation(lat0: float, lon0: float) -> np.ndarray:
    la, lo = np.radians(lat0), np.radians(lon0)
    return np.array(
        [
            [-np.sin(lo), np.cos(lo), 0.0],
            [-np.sin(la) * np.cos(lo), -np.sin(la) * np.sin(lo), np.cos(la)],
            [np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)],
        ]
    )


class LocalFrame:
    """East-North-Up frame at ``(lat0, lon0, alt0)``: x east, y north, z up, metres."""

    def __init__(self, lat0: float, lon0: float, alt0: float = 0.0):
        self.lat0, self.lon0, self.alt0 = float(lat0), float(lon0), float(alt0)
        self._r = _enu_rotation(self.lat0, self.lon0)
        self._o = geodetic_to_ecef(np.array(self.lat0), np.array(self.lon0), np.array(self.alt0))

    def to_local(self, lat, lon, alt=0.0) -> np.ndarray:
        """Degrees/metres (scalars or arrays) -> (..., 3) ENU metres."""
        lat, lon, alt = np.broadcast_arrays(np.asarray(lat, float), np.asarray(lon, float), np.asarray(alt, float))
        return (geodetic_to_ecef(lat, lon, alt) - self._o) @ self._r.T

    def to_wgs84(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(..., 3) ENU metres -> lat, lon (degrees), alt (m)."""
        return ecef_to_geodetic(np.asarray(xyz, float) @ self._r + self._o)

    def to_dict(self) -> dict:
        return {"kind": "wgs84", "origin": {"lat": self.lat0, "lon": self.lon0, "alt": self.alt0}}


def frame_for(locations: Sequence[Location]) -> LocalFrame | None:
    """The metric frame of a set of locations: an ENU frame at their mean for WGS84 (lat/lon)
    locations, None (their own x/y/z metres) for local ones. Raises ``LocationError`` for a
    mix of both, or WGS84 locations straddling the antimeridian."""
    if not locations:
        raise LocationError("no locations given")
    if any(loc.is_wgs84 != locations[0].is_wgs84 for loc in locations):
        raise LocationError(MIXED_KINDS)
    if not locations[0].is_wgs84:
        return None
    lat = np.array([loc.lat for loc in locations], float)
    lon = np.array([loc.lon for loc in locations], float)
    alt = np.array([loc.alt or 0.0 for loc in locations], float)
    if np.ptp(lon) > 180.0:
        raise LocationError("map locations straddle the antimeridian; split the map")
    return LocalFrame(float(lat.mean()), float(lon.mean()), float(alt.mean()))


def locations_to_metric(locations: Sequence[Location], frame: LocalFrame | None) -> np.ndarray:
    """Locations -> (N, 3) metres in ``frame`` (ENU of a WGS84 map; None: a local-metric map).
    Raises ``LocationError`` for a location of the other kind."""
    kind = "WGS84 (lat/lon)" if frame is not None else "local (x/y)"
    if any(loc.is_wgs84 != (frame is not None) for loc in locations):
        raise LocationError(f"this map uses {kind} coordinates; got a location in the other kind")
    if frame is None:
        return np.array([[loc.x, loc.y, loc.z or 0.0] for loc in locations], float).reshape(-1, 3)
    return frame.to_local(
        [loc.lat for loc in locations], [loc.lon for loc in locations], [loc.alt or 0.0 for loc in locations]
    ).reshape(-1, 3)


def metric_to_locations(xyz: np.ndarray, frame: LocalFrame | None) -> list[Location]:
    """(N, 3) metres in ``frame`` -> Locations of the frame's kind (WGS84 or local)."""
    xyz = np.asarray(xyz, float).reshape(-1, 3)
    if frame is None:
        return [Location(x=float(x), y=float(y), z=float(z)) for x, y, z in xyz]
    lat, lon, alt = frame.to_wgs84(xyz)
    return [Location(lat=float(a), lon=float(b), alt=float(c)) for a, b, c in zip(lat, lon, alt)]
