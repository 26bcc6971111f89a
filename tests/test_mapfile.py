"""Map files: round trip, memory mapping, versioning, atomic writes, and corruption."""
from __future__ import annotations

import json
import os
import shutil
import zipfile

import numpy as np
import pytest

import placekit as pk
from placekit.mapfile.archive import FORMAT_NAME, MapContents, MapReader, manifest_digest, write_map
from placekit.mapfile.placemap import PlaceMap


def _contents():
    return MapContents({"format": FORMAT_NAME, "format_version": 1, "min_reader_version": 1},
                       {"a.npy": np.arange(1000, dtype=np.float32).reshape(100, 10),
                        "b/ids.npy": np.arange(7, dtype=np.int64)},
                       {"names.bin": "héllo".encode()})


def test_round_trip_is_memory_mapped_and_aligned(tmp_path):
    write_map(tmp_path / "m.pkmap", _contents())
    r = MapReader(tmp_path / "m.pkmap")
    a = r.array("a.npy")
    assert np.array_equal(a, np.arange(1000, dtype=np.float32).reshape(100, 10))
    assert not a.flags.writeable and a.ctypes.data % 64 == 0
    assert bytes(r.blob("names.bin")).decode() == "héllo"
    with zipfile.ZipFile(tmp_path / "m.pkmap") as zf:
        assert zf.testzip() is None
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    r.close()


def _rewrite_manifest(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "manifest.json":
                manifest = json.loads(data)
                edit(manifest)
                manifest["manifest_sha256"] = manifest_digest(manifest)
                data = json.dumps(manifest).encode()
            zout.writestr(info.filename, data)


def test_newer_format_is_refused_with_upgrade_hint(tmp_path):
    write_map(tmp_path / "m.pkmap", _contents())
    _rewrite_manifest(tmp_path / "m.pkmap", tmp_path / "new.pkmap",
                      lambda m: m.update(format_version=7, min_reader_version=5))
    with pytest.raises(pk.MapFormatError, match="upgrade placekit"):
        MapReader(tmp_path / "new.pkmap")


def test_manifest_edits_are_detected(tmp_path):
    write_map(tmp_path / "m.pkmap", _contents())
    with zipfile.ZipFile(tmp_path / "m.pkmap") as zin, zipfile.ZipFile(tmp_path / "t.pkmap", "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "manifest.json":
                data = data.replace(b'"format_version": 1', b'"format_version": 2')
            zout.writestr(info.filename, data)
    with pytest.raises(pk.MapFormatError, match="manifest.json fails"):
        MapReader(tmp_path / "t.pkmap")


def test_member_table_must_match(tmp_path):
    write_map(tmp_path / "m.pkmap", _contents())
    _rewrite_manifest(tmp_path / "m.pkmap", tmp_path / "x.pkmap", lambda m: m["members"].pop("a.npy"))
    with pytest.raises(pk.MapFormatError, match="unexpected"):
        MapReader(tmp_path / "x.pkmap")


def test_compressed_and_pickled_members_are_refused(tmp_path):
    write_map(tmp_path / "m.pkmap", _contents())
    with zipfile.ZipFile(tmp_path / "m.pkmap") as zin, \
            zipfile.ZipFile(tmp_path / "z.pkmap", "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    with pytest.raises(pk.MapFormatError, match="compressed"):
        MapReader(tmp_path / "z.pkmap")
    with pytest.raises(pk.MapFormatError, match="object"):
        write_map(tmp_path / "o.pkmap", MapContents({"format": FORMAT_NAME}, {"o.npy": np.array([None, 1])}))
    assert not (tmp_path / "o.pkmap").exists()


def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "m.pkmap"
    write_map(target, _contents())
    before = target.read_bytes()

    import placekit.mapfile.archive as mf

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(mf, "_write_member", boom)
    with pytest.raises(OSError, match="disk full"):
        write_map(target, _contents())
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pkmap"]


@pytest.mark.parametrize("content, match", [(b"", "empty"), (b"PK\x03\x04junk", "not a valid"),
                                            (b"hello world" * 100, "not a valid")])
def test_garbage_files(tmp_path, content, match):
    (tmp_path / "g.pkmap").write_bytes(content)
    with pytest.raises(pk.MapFormatError, match=match):
        MapReader(tmp_path / "g.pkmap")
    with pytest.raises(pk.MapFormatError, match="does not exist"):
        MapReader(tmp_path / "missing.pkmap")


def test_truncation_and_bit_flips_on_a_real_map(street_map, tmp_path):
    data = street_map.read_bytes()
    rng = np.random.default_rng(0)
    for cut in sorted(rng.integers(1, len(data) - 1, 25)):
        (tmp_path / "t.pkmap").write_bytes(data[:cut])
        with pytest.raises(pk.MapFormatError):
            PlaceMap.load(tmp_path / "t.pkmap")
    for pos in rng.integers(0, len(data), 25):
        flipped = bytearray(data)
        flipped[pos] ^= 0x10
        (tmp_path / "f.pkmap").write_bytes(bytes(flipped))
        try:
            PlaceMap.load(tmp_path / "f.pkmap").close()  # a flip in ZIP padding/timestamps is harmless
        except pk.MapFormatError:
            pass


def test_map_built_with_another_model_is_refused(street_map, tmp_path):
    from tiny_models import thumbnail_model

    other = thumbnail_model(tmp_path / "other.onnx", seed=4)
    with pytest.raises(pk.MapFormatError):  # ModelMismatchError is a MapFormatError
        pk.Localizer.open(street_map, pk.LocalizerOptions(model=str(other)))


def test_fuzzed_maps_only_raise_map_format_error(street_map, tmp_path):
    """Random mutations of a valid map: only MapFormatError may escape (the benchmark
    benchmarks/fuzz_mapfile.py runs thousands of cases)."""
    from fuzz_cases import run_cases

    data = street_map.read_bytes()
    shutil.copy(street_map.with_suffix(".pkmap"), tmp_path / "ok.pkmap")
    outcomes, escaped = run_cases(data, 300, np.random.default_rng(1234), tmp_path)
    assert escaped == []
    assert outcomes["MapFormatError"] > 200
    assert os.path.getsize(tmp_path / "ok.pkmap") == len(data)


def test_index_and_places_id_check_catches_duplicates_gaps_and_sparse_ids():
    from placekit.mapfile.placemap import _same_ids

    places = np.arange(10, dtype=np.int64) * 3
    assert _same_ids(places[::-1].copy(), places)
    assert not _same_ids(np.array([0, 3, 6, 9, 12, 15, 18, 21, 24, 24]), places)  # a duplicate hides 27
    assert not _same_ids(places + 1, places)
    assert not _same_ids(places[:-1], places)
    sparse = np.array([0, 10**12], np.int64)  # too sparse for a bitmap: sorted instead
    assert _same_ids(sparse[::-1].copy(), sparse) and not _same_ids(np.array([0, 0]), sparse)


def test_the_extent_is_stored_and_follows_edits(street_map):
    from placekit.mapfile.placemap import PlaceMap

    placemap = PlaceMap.load(street_map)
    try:
        stored = placemap.manifest["places"]["extent_m"]
        xyz = np.asarray(placemap.places.xyz)
        np.testing.assert_allclose(stored, xyz.max(0) - xyz.min(0))
        assert placemap.info().extent_m == tuple(round(v, 2) for v in stored)
        far = placemap.places.append(10**6, xyz.min(0) + [1000.0, 0.0, 0.0], "far away")
        assert far.extent()[0] == pytest.approx(max(1000.0, stored[0]))
        assert placemap.places.with_stored_extent(["bad", 1, 2]).extent() == tuple(stored)
    finally:
        placemap.close()


def test_row_checks_are_skipped_only_when_asked():
    """`placekit map info` opens without the O(places) row checks; every other open runs them."""
    from placekit.errors import MapFormatError
    from placekit.mapfile.places import PlaceTable

    table = PlaceTable.create(np.arange(4), np.zeros((4, 3)), ["a", "b", "c", "d"])
    broken = PlaceTable(table.ids[::-1].copy(), table.xyz, table.name_blob, table.name_offsets,
                        table.rotation, table.intrinsics)
    broken.validate("test", check_rows=False)
    with pytest.raises(MapFormatError):
        broken.validate("test")
    bad_shape = PlaceTable(table.ids, table.xyz[:3], table.name_blob, table.name_offsets, table.rotation,
                           table.intrinsics)
    with pytest.raises(MapFormatError):
        bad_shape.validate("test", check_rows=False)
