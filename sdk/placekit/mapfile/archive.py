"""The map file container: one uncompressed ZIP archive whose members can be memory-mapped.

``manifest.json`` (with the sha256 and size of every other member), ``*.npy`` arrays (NumPy
format, never pickled objects; data 64-byte aligned) and ``*.bin`` byte blobs. Which members
and manifest keys exist, and in which format version, is described once, in
``docs/map-format.md``.

Writes are atomic: a temporary file in the target folder, fsync, then ``os.replace``; a
failed write leaves no partial file. Reads check the structure (ZIP directory, member list,
sizes, NumPy headers) always, and every member's sha256 unless ``verify=False``. Every
problem raises ``MapFormatError`` naming the file and what was expected."""

from __future__ import annotations

import hashlib
import io
import json
import mmap
import os
import struct
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from placekit.errors import MapFormatError, MapWriteError

FORMAT_NAME = "placekit-map"
# Format history. 1: global descriptors (GeM) + index + places. 2: optional local-feature
# members (``local/*``: keypoints, int8 descriptors, 3D points) and VLAD maps
# (``descriptor/vocabulary.npy``). A file needs reader 2 only when it uses them, so a
# GeM-only map written today still opens in a format-1 reader. 3: ``local.detector`` (the
# keypoint detector of the stored local features); maps whose detector is not SIFT need it.
# 4: a VLAD map's PCA-whitening (``descriptor/whitening_*.npy``, shipped with the local
# model's vocabulary); maps that use it need it.
FORMAT_VERSION = 4
MIN_READER_VERSION = 1
MIN_READER_VERSION_LOCAL = 2
MIN_READER_VERSION_DETECTOR = 3
MIN_READER_VERSION_VLAD_WHITENING = 4
IN_MEMORY_MAX_BYTES = 32 * 1024 * 1024  # smaller maps are read into memory, larger ones memory-mapped
MANIFEST = "manifest.json"
ALIGN = 64
_PAD_EXTRA_ID = 0x6B70  # "pk": padding block in the local header's extra field
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_ZIP64_LOCAL_EXTRA = 20
_MAX_MANIFEST_BYTES = 64 << 20


@dataclass
class MapContents:
    """What a map file holds: the manifest dict, arrays and byte blobs by member name."""

    manifest: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    blobs: Mapping[str, bytes | memoryview] = field(default_factory=dict)


# --------------------------------------------------------------------------- writing
def write_map(path: str | os.PathLike, contents: MapContents) -> None:
    """Atomically write ``contents`` to ``path``; the manifest gets the member table."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise MapFormatError(f"cannot write map to {path}: it is a directory")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise MapWriteError(f"cannot write map {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w+b") as fh:
            members = _write_members(fh, contents)
            fh.flush()
            os.fsync(fh.fileno())
        del members
        os.chmod(tmp_name, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
        os.replace(tmp_name, path)
    except BaseException as exc:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):  # read-only folder, immutable file, full disk: the old map is intact
            raise MapWriteError(f"cannot write map {path}: {exc.strerror or exc}") from exc
        raise


def _write_members(fh, contents: MapContents) -> dict:
    table: dict[str, dict] = {}
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in contents.arrays.items():
            array = np.ascontiguousarray(array)
            if array.dtype.hasobject:
                raise MapFormatError(f"member {name}: object arrays cannot be stored")
            header = io.BytesIO()
            np.lib.format.write_array_header_2_0(header, np.lib.format.header_data_from_array_1_0(array))
            body = memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
            chunks = [header.getvalue(), body]
            table[name] = _write_member(zf, fh, name, chunks)
        for name, blob in contents.blobs.items():
            table[name] = _write_member(zf, fh, name, [memoryview(blob)])
        manifest = dict(contents.manifest)
        manifest["members"] = table
        manifest["manifest_sha256"] = manifest_digest(manifest)
        data = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
        zf.writestr(zipfile.ZipInfo(MANIFEST, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return table


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON without its own ``manifest_sha256`` field."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _write_member(zf: zipfile.ZipFile, fh, name: str, chunks: list) -> dict:
    size = sum(len(c) for c in chunks)
    zip64 = size > 0x7FFFFFFF
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    offset = fh.tell()
    fixed = _LOCAL_HEADER.size + len(name.encode("utf-8")) + (_ZIP64_LOCAL_EXTRA if zip64 else 0)
    pad = (-(offset + fixed)) % ALIGN
    if 0 < pad < 4:
        pad += ALIGN
    if pad:
        info.extra = struct.pack("<HH", _PAD_EXTRA_ID, pad - 4) + b"\0" * (pad - 4)
    digest = hashlib.sha256()
    with zf.open(info, "w", force_zip64=zip64) as out:
        for chunk in chunks:
            for start in range(0, len(chunk), 1 << 24):
                piece = chunk[start : start + (1 << 24)]
                digest.update(piece)
                out.write(piece)
    return {"sha256": digest.hexdigest(), "size": size}


# --------------------------------------------------------------------------- reading
class MapReader:
    """An open map file. ``arrays`` are read-only views into a private in-memory copy of the
    file (up to ``IN_MEMORY_MAX_BYTES``) or into a memory map of it (larger maps)."""

    def __init__(self, path: str | os.PathLike, verify: bool = True):
        self.path = Path(path)
        # the open file and the buffer members are read from (bytes in memory, or an mmap)
        self._fh: Any = None
        self._mm: Any = None
        try:
            self._open(verify)
        except MapFormatError:
            self.close()
            raise
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            EOFError,
            struct.error,
            ValueError,
            KeyError,
            UnicodeDecodeError,
            OverflowError,
            NotImplementedError,
        ) as exc:
            self.close()
            raise MapFormatError(f"{self.path}: not a valid placekit map ({type(exc).__name__}: {exc})") from exc

    def _fail(self, what: str) -> MapFormatError:
        return MapFormatError(f"{self.path}: {what}")

    def _open(self, verify: bool) -> None:
        if not self.path.is_file():
            raise MapFormatError(f"{self.path}: map file does not exist")
        self._fh = open(self.path, "rb")
        stat = os.fstat(self._fh.fileno())
        size = stat.st_size
        if size == 0:
            raise self._fail("file is empty")
        self._identity = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if size <= IN_MEMORY_MAX_BYTES:
            self._mm = self._read_aligned(size)  # a private copy: nothing done to the file can reach it
        else:
            self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        zf = zipfile.ZipFile(self._fh)
        with zf:
            infos = {i.filename: i for i in zf.infolist()}
            if MANIFEST not in infos:
                raise self._fail("no manifest.json member: not a placekit map")
            self.manifest = self._read_manifest(infos[MANIFEST], size)
            declared = self.manifest["members"]
            actual = set(infos) - {MANIFEST}
            if set(declared) != actual:
                missing, extra = sorted(set(declared) - actual), sorted(actual - set(declared))
                raise self._fail(f"members do not match the manifest (missing {missing}, unexpected {extra})")
            self._spans = {name: self._member_span(infos[name], size) for name in actual}
        for name, (start, length) in self._spans.items():
            if declared[name].get("size") != length:
                raise self._fail(f"member {name} has {length} bytes, manifest says {declared[name].get('size')}")
            if verify and self._sha256(start, length) != declared[name].get("sha256"):
                raise self._fail(f"member {name} fails its sha256 check: the file is corrupt or was modified")
        self.arrays = {n: self._array(n) for n in self._spans if n.endswith(".npy")}

    def _read_aligned(self, size: int) -> np.ndarray:
        """The whole file as a read-only (size,) uint8 array whose first byte is 64-byte aligned,
        so that members keep the alignment the writer gave them (as in a memory map)."""
        raw = np.empty(size + ALIGN, np.uint8)
        start = (-raw.ctypes.data) % ALIGN
        data = raw[start : start + size]
        self._fh.seek(0)
        if self._fh.readinto(memoryview(data)) != size:  # type: ignore[arg-type]
            raise self._fail("file changed size while it was read")
        data.flags.writeable = False
        return data

    def _sha256(self, start: int, length: int) -> str:
        """Hash a byte range with plain reads, not through the memory map, so that verifying a
        large map does not make all of it resident in this process."""
        digest = hashlib.sha256()
        self._fh.seek(start)
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        remaining = length
        while remaining:
            n = self._fh.readinto(view[: min(remaining, len(buf))])
            if not n:
                raise self._fail("file ended while verifying a member (truncated)")
            digest.update(view[:n])
            remaining -= n
        return digest.hexdigest()

    def _member_span(self, info: zipfile.ZipInfo, size: int) -> tuple[int, int]:
        if info.compress_type != zipfile.ZIP_STORED:
            raise self._fail(f"member {info.filename} is compressed; maps must be stored uncompressed")
        if info.flag_bits & 0x1:
            raise self._fail(f"member {info.filename} is encrypted")
        off = info.header_offset
        if off + _LOCAL_HEADER.size > size:
            raise self._fail(f"member {info.filename}: header beyond end of file (truncated)")
        fields = _LOCAL_HEADER.unpack(self._mm[off : off + _LOCAL_HEADER.size])
        if fields[0] != b"PK\x03\x04":
            raise self._fail(f"member {info.filename}: bad local header signature")
        start = off + _LOCAL_HEADER.size + fields[-2] + fields[-1]
        if start + info.file_size > size:
            raise self._fail(f"member {info.filename} runs past the end of the file (truncated)")
        return start, info.file_size

    def _read_manifest(self, info: zipfile.ZipInfo, size: int) -> dict:
        if info.file_size > _MAX_MANIFEST_BYTES:
            raise self._fail("manifest.json is implausibly large")
        start, length = self._member_span(info, size)
        try:
            manifest = json.loads(bytes(self._mm[start : start + length]).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._fail(f"manifest.json is not valid JSON ({exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise self._fail("manifest.json does not describe a placekit map")
        version, needs = manifest.get("format_version"), manifest.get("min_reader_version")
        if not isinstance(version, int) or not isinstance(needs, int):
            raise self._fail("manifest.json lacks integer format_version / min_reader_version")
        if needs > FORMAT_VERSION:
            raise self._fail(
                f"map format {version} needs a reader of format >= {needs}; this placekit reads "
                f"format {FORMAT_VERSION} (written by placekit {manifest.get('library_version', '?')}): upgrade placekit"
            )
        if manifest.get("manifest_sha256") != manifest_digest(manifest):
            raise self._fail("manifest.json fails its sha256 check: the file is corrupt or was modified")
        if not isinstance(manifest.get("members"), dict) or not all(
            isinstance(v, dict) for v in manifest["members"].values()
        ):
            raise self._fail("manifest.json has no valid member table")
        return manifest

    def _array(self, name: str) -> np.ndarray:
        start, length = self._spans[name]
        head = io.BytesIO(self._mm[start : start + min(length, 65536)])
        try:
            major, _ = np.lib.format.read_magic(head)
            reader = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}
            if major not in reader:
                raise self._fail(f"member {name}: unsupported .npy version {major}")
            shape, fortran, dtype = reader[major](head)
        except ValueError as exc:
            raise self._fail(f"member {name}: bad .npy header ({exc})") from exc
        if dtype.hasobject:
            raise self._fail(f"member {name} holds Python objects; refusing to unpickle")
        if fortran:
            raise self._fail(f"member {name} is Fortran-ordered; expected C order")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        data_start = head.tell()
        if data_start + nbytes != length:
            raise self._fail(f"member {name}: array of shape {shape} {dtype} does not fit its {length} bytes")
        count = int(np.prod(shape, dtype=np.int64))
        # frombuffer holds a buffer export on the memory map, so the mapping cannot be unmapped
        # (close() while another thread still searches) before the last array is freed
        return np.frombuffer(self._mm, dtype=dtype, count=count, offset=start + data_start).reshape(shape)

    @property
    def memory_mapped(self) -> bool:
        """True for files over ``IN_MEMORY_MAX_BYTES``: their members are views into a memory map."""
        return isinstance(self._mm, mmap.mmap)

    def check_unchanged(self) -> None:
        """Raise ``MapFormatError`` when a memory-mapped map file was modified in place since it
        was opened (reading a truncated mapping would kill the process with SIGBUS). Maps are
        replaced by writing a new file and renaming it over the old one, which an open reader
        never sees; smaller maps are read into memory and immune either way."""
        fh = self._fh
        if not self.memory_mapped or fh is None:
            return
        try:
            stat = os.fstat(fh.fileno())
        except (OSError, ValueError):
            return  # closed by another thread meanwhile: a call in flight finishes on its views
        if (stat.st_ino, stat.st_size, stat.st_mtime_ns) != self._identity:
            raise self._fail(
                "the map file was modified in place while open (replace maps by writing a new file "
                "and renaming it over the old one); reopen it"
            )

    def blob(self, name: str) -> memoryview:
        """Bytes of a non-array member (a read-only view into the memory map)."""
        if name not in self._spans:
            raise self._fail(f"member {name} is missing")
        start, length = self._spans[name]
        return memoryview(self._mm)[start : start + length]

    def member_names(self) -> list[str]:
        return list(self._spans)

    def release(self, *names: str) -> None:
        """Drop the pages of these members from this process's resident set (they stay in the
        page cache and fault back in when read). Used after open-time validation so that
        checking a large member does not leave all of it resident."""
        self._advise("MADV_DONTNEED", names)

    def expect_random_access(self, *names: str) -> None:
        """No read-ahead for these members: a search reads a few scattered rows of them."""
        self._advise("MADV_RANDOM", names)

    def _advise(self, advice_name: str, names) -> None:
        advice = getattr(mmap, advice_name, None)
        if advice is None or not self.memory_mapped:
            return
        for name in names:
            if name in self._spans:
                start, length = self._spans[name]
                aligned = start - start % mmap.PAGESIZE
                if length:
                    self._mm.madvise(advice, aligned, length + start - aligned)

    def array(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            raise self._fail(f"array member {name} is missing")
        return self.arrays[name]

    def close(self) -> None:
        """Release the file. Arrays handed out keep the mapping alive until they are freed."""
        self.arrays = {}
        if self.memory_mapped:
            try:
                self._mm.close()
            except BufferError:
                pass  # views still alive; the mapping closes when they are collected
        self._mm = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None
