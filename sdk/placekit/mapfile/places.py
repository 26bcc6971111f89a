"""The places table of a map: id, name, position (local metres), optional camera data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from placekit.errors import MapFormatError


@dataclass(frozen=True)
class PlaceTable:
    """Rows sorted by id. ids (N,) int64; xyz (N, 3) float64 metres in the map frame;
    names as UTF-8 bytes ``name_blob`` cut by ``name_offsets`` (N + 1,) int64; rotation (N, 4)
    and intrinsics (N, 4) float32, NaN where unknown."""

    ids: np.ndarray
    xyz: np.ndarray
    name_blob: bytes | memoryview
    name_offsets: np.ndarray
    rotation: np.ndarray
    intrinsics: np.ndarray

    @classmethod
    def create(cls, ids, xyz, names, rotation=None, intrinsics=None) -> PlaceTable:
        """A table from ids (N,), xyz (N, 3), N names and optional camera rows, sorted by id."""
        ids = np.asarray(ids, np.int64)
        encoded = [n.encode("utf-8") for n in names]
        offsets = np.zeros(len(encoded) + 1, np.int64)
        offsets[1:] = np.cumsum([len(e) for e in encoded])
        blob = b"".join(encoded)
        del encoded
        n = len(ids)
        rot = np.full((n, 4), np.nan, np.float32) if rotation is None else np.asarray(rotation, np.float32)
        intr = np.full((n, 4), np.nan, np.float32) if intrinsics is None else np.asarray(intrinsics, np.float32)
        table = cls(ids, np.asarray(xyz, np.float64), blob, offsets, rot, intr)
        if n < 2 or bool(np.all(ids[1:] > ids[:-1])):
            return table
        return table.take(np.argsort(ids, kind="stable"))

    def take(self, rows: np.ndarray) -> PlaceTable:
        """The table of these rows, in this order (columnar: no Python object per place)."""
        rows = np.asarray(rows, np.int64)
        offsets = np.asarray(self.name_offsets)
        lengths = np.diff(offsets)[rows]
        new_offsets = np.zeros(len(rows) + 1, np.int64)
        new_offsets[1:] = np.cumsum(lengths)
        # byte j of the new blob comes from old byte (start of its row) + (j - new start of its row)
        shift = np.repeat(offsets[:-1][rows] - new_offsets[:-1], lengths)
        source = np.frombuffer(self.name_blob, np.uint8)
        blob = source[np.arange(int(new_offsets[-1]), dtype=np.int64) + shift].tobytes()
        return PlaceTable(self.ids[rows], self.xyz[rows], blob, new_offsets, self.rotation[rows], self.intrinsics[rows])

    def append(self, place_id: int, xyz, name: str, rotation=None, intrinsics=None) -> PlaceTable:
        """A new table with one more place (ids must stay sorted: ``place_id`` > every id)."""
        if len(self.ids) and place_id <= int(self.ids[-1]):
            raise ValueError(f"place id {place_id} is not above the table's largest id")
        encoded = name.encode("utf-8")
        offsets = np.append(np.asarray(self.name_offsets), self.name_offsets[-1] + len(encoded))
        nan4 = (np.nan,) * 4
        table = PlaceTable(
            np.append(np.asarray(self.ids), np.int64(place_id)),
            np.concatenate([np.asarray(self.xyz), np.asarray(xyz, np.float64).reshape(1, 3)]),
            bytes(self.name_blob) + encoded,
            offsets,
            np.concatenate([np.asarray(self.rotation), np.array([rotation or nan4], np.float32)]),
            np.concatenate([np.asarray(self.intrinsics), np.array([intrinsics or nan4], np.float32)]),
        )
        names = self.__dict__.get("_names")
        if names is not None:  # carried forward (shared: names are only ever added to it)
            names.add(name)
            object.__setattr__(table, "_names", names)
        return table

    def extent(self) -> tuple[float, float, float]:
        """Size (x, y, z) of the places' bounding box in metres; computed once per table (a map
        file stores it, so ``map info`` on 10M places need not scan the positions)."""
        known = self.__dict__.get("_extent")
        if known is None:
            xyz = np.asarray(self.xyz)
            known = tuple(float(v) for v in (xyz.max(0) - xyz.min(0))) if len(xyz) else (0.0, 0.0, 0.0)
            object.__setattr__(self, "_extent", known)
        return known

    def with_stored_extent(self, extent: object) -> PlaceTable:
        """This table, its ``extent`` taken from a map's manifest when that holds 3 finite
        non-negative numbers (else computed on first use)."""
        if isinstance(extent, list) and len(extent) == 3 and all(isinstance(v, (int, float)) for v in extent):
            values = tuple(float(v) for v in extent)
            if all(np.isfinite(v) and v >= 0 for v in values):
                object.__setattr__(self, "_extent", values)
        return self

    def has_name(self, name: str) -> bool:
        names = self.__dict__.get("_names")
        if names is None:
            names = {self.name(r) for r in range(len(self.ids))}
            object.__setattr__(self, "_names", names)
        return name in names

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id; MapFormatError if an id is not in the table."""
        rows = np.searchsorted(self.ids, ids)
        rows = np.minimum(rows, len(self.ids) - 1)
        if len(self.ids) == 0 or not np.array_equal(self.ids[rows], ids):
            raise MapFormatError("the index refers to places missing from the places table")
        return rows

    def rows_present(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, mask): rows of the ids that are in the table and a (len(ids),) mask of which
        were. For searches racing a live map update."""
        ids = np.asarray(ids, np.int64)
        if len(self.ids) == 0:
            return np.zeros(0, np.int64), np.zeros(len(ids), bool)
        rows = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        mask = self.ids[rows] == ids
        return rows[mask], mask

    def strip_size(self, center: np.ndarray, radius: float) -> int:
        """How many places lie within ``radius`` of ``center`` along x alone: an upper bound of
        ``len(within(...))`` in O(log N)."""
        xs = self._x_sorted()[1]
        return int(np.searchsorted(xs, center[0] + radius, side="right") - np.searchsorted(xs, center[0] - radius))

    def _x_sorted(self) -> tuple[np.ndarray, np.ndarray]:
        order = self.__dict__.get("_x_order")
        if order is None:
            order = np.argsort(np.asarray(self.xyz[:, 0]), kind="stable")
            object.__setattr__(self, "_x_order", order)
            object.__setattr__(self, "_x_values", np.asarray(self.xyz[order, 0]))
        return order, self.__dict__["_x_values"]

    def within(self, center: np.ndarray, radius: float) -> np.ndarray:
        """Ids of the places whose horizontal (x, y) distance to ``center`` (3,) is <= radius.
        A binary search on x-sorted rows (cached) bounds the scan to a strip of width 2 r."""
        order, xs = self._x_sorted()
        lo = np.searchsorted(xs, center[0] - radius, side="left")
        hi = np.searchsorted(xs, center[0] + radius, side="right")
        rows = order[lo:hi]
        d2 = ((np.asarray(self.xyz[rows, :2]) - np.asarray(center[:2])) ** 2).sum(1)
        return self.ids[np.sort(rows[d2 <= radius * radius])]

    def name(self, row: int) -> str:
        a, b = int(self.name_offsets[row]), int(self.name_offsets[row + 1])
        return bytes(self.name_blob[a:b]).decode("utf-8", errors="replace")

    def validate(self, source: str, check_rows: bool = True) -> None:
        """Shapes and name bounds always; with ``check_rows`` also every row (ids strictly
        increasing, name offsets ordered, positions finite): O(places)."""
        n = len(self.ids)
        ok = (
            self.xyz.shape == (n, 3)
            and self.rotation.shape == (n, 4)
            and self.intrinsics.shape == (n, 4)
            and self.name_offsets.shape == (n + 1,)
            and (n == 0 or (self.name_offsets[0] == 0 and self.name_offsets[-1] == len(self.name_blob)))
        )
        if ok and check_rows and n:
            ok = (
                bool(np.all(np.diff(self.name_offsets) >= 0))
                and bool(np.all(np.diff(self.ids) > 0))
                and bool(np.isfinite(self.xyz).all())
            )
        if not ok:
            raise MapFormatError(f"{source}: the places table is inconsistent")

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
        arrays = {
            "places/ids.npy": self.ids,
            "places/xyz.npy": self.xyz,
            "places/name_offsets.npy": self.name_offsets,
            "places/rotation.npy": self.rotation,
            "places/intrinsics.npy": self.intrinsics,
        }
        return arrays, {"places/names.bin": bytes(self.name_blob)}
