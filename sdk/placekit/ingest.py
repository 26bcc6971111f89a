"""Map inputs from files: a folder of images with their locations from a CSV file or from the
images' EXIF GPS tags (``folder_images``), and the locations CSV format (``docs/data.md``).

CSV columns: ``name``, then either ``x,y[,z]`` (metres, local frame) or ``lat,lon[,alt]`` (WGS84);
optionally ``qw,qx,qy,qz`` (world-to-camera rotation), ``fx,fy,cx,cy`` (pixels) and ``group``
(the capture session: a video clip, a drive; used by map calibration). Errors name the file and
the line.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from placekit.errors import CSVFormatError, ImageReadError, LocationError
from placekit.inference.imageio import list_images, read_exif_gps
from placekit.types import Location

EXIF = "exif"
ROTATION = ("qw", "qx", "qy", "qz")
INTRINSICS = ("fx", "fy", "cx", "cy")


def read_locations_csv(path: str | os.PathLike[str]) -> dict[str, Location]:
    """Name -> Location, in file order."""
    return {name: loc for name, (loc, _) in read_locations_and_groups(path).items()}


def read_locations_and_groups(path: str | os.PathLike[str]) -> dict[str, tuple[Location, str | None]]:
    """Name -> (Location, group or None when the file has no ``group`` column), in file order."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CSVFormatError(f"{path}: cannot read ({exc})") from exc
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise CSVFormatError(f"{path}: file is empty; expected a header line")
    header = [h.strip().lower() for h in rows[0]]
    if "name" not in header:
        raise CSVFormatError(f"{path}:1: missing column 'name' (got {header})")
    if {"lat", "lon"} <= set(header) and ({"x", "y"} & set(header)):
        raise CSVFormatError(f"{path}:1: both lat,lon and x/y columns; a file holds one kind of location")
    if {"lat", "lon"} <= set(header):
        coords = ("lat", "lon", "alt") if "alt" in header else ("lat", "lon")
    elif {"x", "y"} <= set(header):
        coords = ("x", "y", "z") if "z" in header else ("x", "y")
    else:
        raise CSVFormatError(f"{path}:1: need columns x,y[,z] or lat,lon[,alt]; got {header}")
    groups = [g for g in (ROTATION, INTRINSICS) if g[0] in header]
    for group in groups:
        missing = [c for c in group if c not in header]
        if missing:
            raise CSVFormatError(f"{path}:1: columns {missing} missing from group {group}")
    col = {h: i for i, h in enumerate(header)}
    out: dict[str, tuple[Location, str | None]] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise CSVFormatError(f"{path}:{lineno}: expected {len(header)} fields, got {len(row)}")
        name = row[col["name"]].strip()
        if not name:
            raise CSVFormatError(f"{path}:{lineno}: empty image name")
        if name in out:
            raise CSVFormatError(f"{path}:{lineno}: duplicate image name {name!r}")
        kwargs: dict[str, Any] = {c: _number(path, lineno, c, row[col[c]]) for c in coords[:2]}
        for c in coords[2:]:  # alt / z: an empty cell is "not given"
            kwargs[c] = _number(path, lineno, c, row[col[c]]) if row[col[c]].strip() else None
        for group, key in ((ROTATION, "rotation"), (INTRINSICS, "intrinsics")):
            if group in groups and any(row[col[c]].strip() for c in group):  # all empty: this image has none
                kwargs[key] = tuple(_number(path, lineno, c, row[col[c]]) for c in group)
        try:
            location = Location(**kwargs)
        except LocationError as exc:
            raise CSVFormatError(f"{path}:{lineno}: {exc}") from exc
        out[name] = (location, row[col["group"]].strip() or None if "group" in col else None)
    if not out:
        raise CSVFormatError(f"{path}: no data rows")
    return out


def _number(path: Path, lineno: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CSVFormatError(f"{path}:{lineno}: column {column!r} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise CSVFormatError(f"{path}:{lineno}: column {column!r} is not finite: {text!r}")
    return value


def write_locations_csv(
    path: str | os.PathLike[str], locations: dict[str, Location], groups: dict[str, str | None] | None = None
) -> None:
    """Inverse of ``read_locations_and_groups``: WGS84 or local locations (one kind per file),
    with ``alt`` / ``z``, rotation and intrinsics columns when any location has them (empty cells
    where one does not) and a ``group`` column when ``groups`` is given."""
    kinds = {loc.is_wgs84 for loc in locations.values()}
    if len(kinds) != 1:
        raise LocationError("a CSV holds either WGS84 or local locations, not both")
    wgs = kinds.pop()
    cols = ["lat", "lon"] if wgs else ["x", "y"]
    third = "alt" if wgs else "z"
    if any(getattr(loc, third) is not None for loc in locations.values()):
        cols.append(third)
    extra = [
        (group, key)
        for group, key in ((ROTATION, "rotation"), (INTRINSICS, "intrinsics"))
        if any(getattr(loc, key) is not None for loc in locations.values())
    ]
    header = ["name", *cols, *[c for group, _ in extra for c in group]] + (["group"] if groups is not None else [])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for name, loc in locations.items():
            row = [name, *["" if getattr(loc, c) is None else repr(float(getattr(loc, c))) for c in cols]]
            for group, key in extra:
                value = getattr(loc, key)
                row += [""] * len(group) if value is None else [repr(float(v)) for v in value]
            if groups is not None:
                row.append(groups.get(name) or "")
            w.writerow(row)


@dataclass(frozen=True)
class FolderImages:
    """The images of a folder with their locations. items: (path, location, name, group or
    None) in CSV (or file-name) order, as ``MapBuilder.add_many`` takes them. unlisted: names of
    images in the folder that the CSV has no row for (skipped)."""

    items: list[tuple[Path, Location, str, str | None]]
    unlisted: list[str]


def folder_images(folder: str | os.PathLike[str], locations: str | os.PathLike[str]) -> FolderImages:
    """A folder of map images and where each was taken: ``locations`` is a locations CSV file
    or ``"exif"`` (every image's EXIF GPS position). Raises ``CSVFormatError`` for a CSV row
    naming an image that is not in the folder, ``ImageReadError`` for an image without GPS."""
    folder = Path(folder)
    images = list_images(folder)
    if str(locations) == EXIF:
        items: list[tuple[Path, Location, str, str | None]] = []
        for path in images:
            gps = read_exif_gps(path)
            if gps is None:
                raise ImageReadError(f"{path} has no EXIF GPS position; give a locations CSV instead")
            lat, lon, alt = gps
            items.append((path, Location(lat=lat, lon=lon, alt=alt), path.name, None))
        return FolderImages(items, [])
    rows = read_locations_and_groups(locations)
    present = {p.name for p in images}
    for lineno, name in enumerate(rows, start=2):
        if name not in present and not (folder / name).is_file():
            raise CSVFormatError(f"{locations}:{lineno}: image {name!r} is not in {folder}")
    return FolderImages(
        [(folder / name, loc, name, group) for name, (loc, group) in rows.items()], sorted(present - set(rows))
    )
