"""A map in memory: index + places + frame + calibration + model reference, and its
translation to and from the map file (``placekit.mapfile.archive``).

Manifest sections (each key, and the format version that added it: ``docs/map-format.md``):
``model`` {name, sha256, embedded, info}, ``descriptor``
{kind, dim}, ``frame`` ({kind: wgs84, origin} or {kind: local}), ``index`` (recipe, dims,
search defaults, graph scalars), ``calibration`` (decision thresholds), ``places`` {count,
next_id: the id the next added place gets; absent in maps written before it, read as 0},
``user`` (free metadata), plus the versions and member table of ``placekit.mapfile.archive``.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from placekit._version import __version__
from placekit.decision.calibration import Calibration
from placekit.errors import BuildError, MapFormatError
from placekit.geometry.frames import LocalFrame, locations_to_metric, metric_to_locations
from placekit.index.ivf import PlaceIndex
from placekit.index.quantize import PCAWhitening
from placekit.local.vlad import VladModel
from placekit.mapfile.archive import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MIN_READER_VERSION,
    MIN_READER_VERSION_DETECTOR,
    MIN_READER_VERSION_LOCAL,
    MIN_READER_VERSION_VLAD_WHITENING,
    MapContents,
    MapReader,
    write_map,
)
from placekit.mapfile.places import PlaceTable
from placekit.mapfile.pointmap import PointMap
from placekit.types import Location, MapInfo

MODEL_MEMBER = "model/model.bin"
VOCABULARY_MEMBER = "descriptor/vocabulary.npy"
WHITENING_MEAN_MEMBER = "descriptor/whitening_mean.npy"
WHITENING_PROJECTION_MEMBER = "descriptor/whitening_projection.npy"


@dataclass
class PlaceMap:
    model: dict
    descriptor: dict
    index: PlaceIndex
    places: PlaceTable
    frame: LocalFrame | None
    calibration: Calibration
    user: dict = field(default_factory=dict)
    model_bytes: bytes | memoryview | None = None
    pointmap: PointMap | None = None
    vlad: VladModel | None = None  # VLAD maps: vocabulary (words, D), optional whitening
    manifest: dict = field(default_factory=dict)
    reader: MapReader | None = None
    issued_ids: int = 0  # ids below this were handed out once (removed places included)

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | os.PathLike) -> None:
        """Write atomically to ``path``."""
        section, arrays = self.index.to_members()
        place_arrays, blobs = self.places.to_arrays()
        arrays.update(place_arrays)
        model = dict(self.model, embedded=self.model_bytes is not None)
        local_section = None
        if self.pointmap is not None:
            local_section, local_arrays = self.pointmap.to_members()
            arrays.update(local_arrays)
        if self.model_bytes is not None:
            blobs[MODEL_MEMBER] = bytes(self.model_bytes)
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "min_reader_version": self._min_reader_version(),
            "library_version": __version__,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": model,
            "descriptor": self.descriptor,
            "frame": self.frame.to_dict() if self.frame else {"kind": "local"},
            "index": section,
            "calibration": self.calibration.to_dict(),
            "places": {
                "count": len(self.places),
                "next_id": self.next_place_id(),
                "extent_m": list(self.places.extent()),
            },
            "user": self.user,
        }
        if local_section is not None:
            manifest["local"] = local_section
        if self.vlad is not None:
            arrays[VOCABULARY_MEMBER] = np.asarray(self.vlad.vocabulary, np.float32)
            if self.vlad.whitening is not None:
                arrays[WHITENING_MEAN_MEMBER] = np.asarray(self.vlad.whitening.mean, np.float32)
                arrays[WHITENING_PROJECTION_MEMBER] = np.asarray(self.vlad.whitening.projection, np.float32)
        write_map(path, MapContents(manifest, arrays, blobs))

    def _min_reader_version(self) -> int:
        """The oldest format a reader must understand to use this map correctly."""
        if self.vlad is not None and self.vlad.whitening is not None:
            return MIN_READER_VERSION_VLAD_WHITENING
        if self.pointmap is not None and self.pointmap.section.get("detector", "sift") != "sift":
            return MIN_READER_VERSION_DETECTOR
        if self.pointmap is not None or self.vlad is not None:
            return MIN_READER_VERSION_LOCAL
        return MIN_READER_VERSION

    @classmethod
    def load(cls, path: str | os.PathLike, verify: bool = True, check_rows: bool = True) -> PlaceMap:
        """Open a map. ``verify``: check every member's sha256 (reads the whole file).
        ``check_rows``: check the per-place arrays are consistent (ids ordered and the same in
        the index and the places table, finite positions): O(places), about 0.6 s at 10M; off
        only for ``placekit map info``, which describes a map without searching it."""
        reader = MapReader(path, verify=verify)
        try:
            return cls._from_reader(reader, check_rows)
        except MapFormatError:
            reader.close()
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            reader.close()
            raise MapFormatError(f"{path}: invalid map contents ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def _from_reader(cls, reader: MapReader, check_rows: bool = True) -> PlaceMap:
        m = reader.manifest
        source = str(reader.path)
        index = PlaceIndex.from_members(m["index"], reader.arrays, source)
        a = reader.arrays
        places = PlaceTable(
            a["places/ids.npy"],
            a["places/xyz.npy"],
            reader.blob("places/names.bin"),
            a["places/name_offsets.npy"],
            a["places/rotation.npy"],
            a["places/intrinsics.npy"],
        )
        places.validate(source, check_rows)
        if check_rows and not _same_ids(index.lists.ids, places.ids):
            raise MapFormatError(f"{source}: index and places table list different places")
        frame_d = m["frame"]
        if frame_d["kind"] == "wgs84":
            o = frame_d["origin"]
            frame = LocalFrame(float(o["lat"]), float(o["lon"]), float(o.get("alt", 0.0)))
        elif frame_d["kind"] == "local":
            frame = None
        else:
            raise MapFormatError(f"{source}: unknown coordinate frame {frame_d['kind']!r}")
        model = dict(m["model"])
        if not isinstance(model.get("sha256"), str) or not isinstance(model.get("name"), str):
            raise MapFormatError(f"{source}: the manifest's model section lacks name / sha256")
        model_bytes = reader.blob(MODEL_MEMBER) if model.get("embedded") else None
        # Validation and the graph copy read members once; searches fault in only what they read.
        reader.release(*reader.member_names())
        reader.expect_random_access(
            "index/vectors.npy", "index/ids.npy", *[n for n in reader.arrays if n.startswith("places/")]
        )
        descriptor = dict(m["descriptor"])
        if int(descriptor["dim"]) != index.dim_in:
            raise MapFormatError(f"{source}: descriptor dim {descriptor['dim']} != index input dim {index.dim_in}")
        pointmap = PointMap.from_members(m["local"], reader.arrays, source) if "local" in m else None
        vlad = _vlad_from_members(reader.arrays, descriptor, m, pointmap, source)
        issued = m.get("places", {}).get("next_id", 0)
        if not isinstance(issued, int) or isinstance(issued, bool) or not 0 <= issued < 2**62:
            raise MapFormatError(f"{source}: places.next_id must be an integer in 0..2^62, got {issued!r}")
        if len(places):  # maps written before next_id: above every stored id (ids are sorted)
            issued = max(issued, int(places.ids[-1]) + 1)
        places = places.with_stored_extent(m.get("places", {}).get("extent_m"))
        return cls(
            model,
            descriptor,
            index,
            places,
            frame,
            Calibration.from_dict(m["calibration"]),
            dict(m.get("user", {})),
            model_bytes,
            pointmap,
            vlad,
            m,
            reader,
            issued,
        )

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()

    # ------------------------------------------------------------------ places
    def next_place_id(self) -> int:
        """The id the next added place gets: above every id this map ever handed out (its
        manifest's ``places.next_id``; 0 in maps written before that field) and above every
        live one. Ids are never reused within a map's life, also across save and reopen."""
        live = int(self.places.ids[-1]) + 1 if len(self.places) else 0  # ids are sorted
        return max(live, self.issued_ids)

    # ------------------------------------------------------------------ live edits (callers hold a lock)
    def add_place(
        self,
        descriptor: np.ndarray,
        xyz: np.ndarray,
        name: str | None,
        rotation: tuple | None = None,
        intrinsics: tuple | None = None,
    ) -> int:
        """Add a place: descriptor (D,) raw, xyz (3,) map metres. Returns its new id; the name
        defaults to ``place_<id>``. Raises ``BuildError`` for a name already in the map."""
        place_id = self.next_place_id()
        name = name or f"place_{place_id:08d}"
        if self.places.has_name(name):
            raise BuildError(f"the map already has a place named {name!r}")
        self.places = self.places.append(place_id, xyz, name, rotation, intrinsics)
        self.index.add(descriptor[None], np.array([place_id]))
        self.issued_ids = place_id + 1
        return place_id

    def remove_place(self, place_id: int) -> bool:
        """Remove a place from searches; False if it was not live."""
        return self.index.remove(np.array([place_id], np.int64)) > 0

    def compact(self) -> None:
        """Drop removed places from the index and the places table."""
        self.index.compact()
        live = np.sort(self.index.ids)
        if len(live) != len(self.places):
            rows, _ = self.places.rows_present(live)
            self.places = self.places.take(rows)

    def location_of(self, rows: np.ndarray) -> list[Location]:
        """Locations of place rows, converted in one vectorised call."""
        return self.location_of_xyz(self.places.xyz[rows])

    def location_of_xyz(self, xyz: np.ndarray) -> list[Location]:
        """Locations of (N, 3) map-frame positions."""
        return self.to_locations(np.asarray(xyz, float).reshape(-1, 3))

    def to_metric(self, location: Location) -> np.ndarray:
        """A Location in the map's kind of coordinates -> (3,) map-frame metres."""
        return locations_to_metric([location], self.frame)[0]

    def to_location(self, xyz: np.ndarray) -> Location:
        """Map-frame metres (3,) -> a Location in the map's frame (WGS84 or local)."""
        return self.to_locations(np.asarray(xyz, float).reshape(1, 3))[0]

    def to_locations(self, xyz: np.ndarray) -> list[Location]:
        """(N, 3) map-frame metres -> Locations in the map's frame (WGS84 or local)."""
        return metric_to_locations(xyz, self.frame)

    def info(self) -> MapInfo:
        """What the map holds (``placekit map info``)."""
        m = self.manifest
        size = Path(self.reader.path).stat().st_size if self.reader else None
        extent = self.places.extent()
        return MapInfo(
            path=str(self.reader.path) if self.reader else None,
            format_version=m.get("format_version"),
            library_version=m.get("library_version"),
            created_utc=m.get("created_utc"),
            places=self.index.ntotal,
            descriptor=dict(self.descriptor),
            model={k: self.model.get(k) for k in ("name", "sha256", "embedded")},
            frame=m.get("frame"),
            extent_m=(round(extent[0], 2), round(extent[1], 2), round(extent[2], 2)),
            index={"recipe": str(self.index.recipe), "dim": self.index.dim, "search": m.get("index", {}).get("search")},
            calibration=self.calibration.to_dict(),
            warnings=tuple(self.calibration.stats.get("warnings", [])),
            local=(
                dict(
                    self.pointmap.section,
                    bytes=self.pointmap.bytes(),
                    places_with_features=len(self.pointmap.place_ids),
                )
                if self.pointmap is not None
                else None
            ),
            file_bytes=size,
            bytes_per_place=round(size / max(self.index.ntotal, 1), 1) if size else None,
            user=dict(self.user),
        )


def _same_ids(index_ids: np.ndarray, place_ids: np.ndarray) -> bool:
    """Whether the index holds exactly the places table's ids (``place_ids`` strictly
    increasing, as ``PlaceTable.validate`` checked). A bitmap over the id range when it is
    dense (no sort of 10M ids at every open), a sort otherwise."""
    n = len(place_ids)
    if len(index_ids) != n:
        return False
    if n == 0:
        return True
    lo, hi = int(place_ids[0]), int(place_ids[-1])
    if int(index_ids.min()) < lo or int(index_ids.max()) > hi:
        return False
    if hi - lo + 1 > 8 * n:
        return bool(np.array_equal(np.sort(index_ids), place_ids))
    seen = np.zeros(hi - lo + 1, bool)
    seen[np.asarray(index_ids) - lo] = True
    return int(np.count_nonzero(seen)) == n and bool(seen[np.asarray(place_ids) - lo].all())


def _vlad_from_members(
    arrays: dict[str, np.ndarray], descriptor: dict, manifest: dict, pointmap: PointMap | None, source: str
) -> VladModel | None:
    """A VLAD map's model (vocabulary (K, D), optional whitening (K * D,) / (K * D, dim)) from
    its members; None for other maps; ``MapFormatError`` when missing or inconsistent."""
    if descriptor.get("kind") != "vlad":
        return None
    vocabulary = arrays.get(VOCABULARY_MEMBER)
    mean, projection = arrays.get(WHITENING_MEAN_MEMBER), arrays.get(WHITENING_PROJECTION_MEMBER)
    if (
        vocabulary is None
        or pointmap is None
        or vocabulary.ndim != 2
        or vocabulary.shape[1] != int(manifest["local"]["dim"])
        or (mean is None) != (projection is None)
    ):
        raise MapFormatError(f"{source}: a VLAD map needs its vocabulary and local-feature members")
    whitening = None
    if mean is not None and projection is not None:
        if mean.shape != (vocabulary.size,) or projection.ndim != 2 or projection.shape[0] != vocabulary.size:
            raise MapFormatError(f"{source}: the VLAD whitening does not match the vocabulary {vocabulary.shape}")
        whitening = PCAWhitening(np.asarray(mean, np.float32), np.asarray(projection, np.float32))
    model = VladModel(np.asarray(vocabulary, np.float32), whitening)
    if model.dim != int(descriptor["dim"]):
        raise MapFormatError(f"{source}: VLAD dim {model.dim} != descriptor dim {descriptor['dim']}")
    return model
