"""Bad input raises a typed placekit error, never an untyped one (options, ids, names,
locations, image files, degenerate geometry)."""
from __future__ import annotations

import shutil
import struct
import warnings
import zlib

import cv2
import numpy as np
import pytest

import placekit as pk


@pytest.mark.parametrize("fields", [
    {"threads": "2"}, {"threads": True}, {"threads": 10 ** 9}, {"top_k": None}, {"top_k": 2.5},
    {"nprobe": 0}, {"rerank": -1}, {"verify": "yes"}, {"verify_map": 1}, {"backend": None},
    {"model": 3}, {"providers": [1]}, {"intrinsics": (1.0, 2.0)}, {"intrinsics": "fx"},
])
def test_localizer_options_of_the_wrong_type_raise_options_error(fields):
    with pytest.raises(pk.OptionsError):
        pk.LocalizerOptions(**fields)


@pytest.mark.parametrize("fields", [
    {"match_radius_m": "25"}, {"match_radius_m": float("nan")}, {"target_precision": None}, {"nprobe": 1.5},
    {"seed": -1}, {"embed_model": "no"}, {"model": None}, {"recipe": 5}, {"threads": 10 ** 9},
])
def test_build_options_of_the_wrong_type_raise_options_error(fields):
    with pytest.raises(pk.OptionsError):
        pk.BuildOptions(**fields)


def test_one_provider_string_is_one_provider_and_numpy_scalars_are_numbers():
    options = pk.LocalizerOptions(providers="CPUExecutionProvider", top_k=np.int64(3))
    assert options.providers == ("CPUExecutionProvider",) and options.top_k == 3 and type(options.top_k) is int
    build = pk.BuildOptions(match_radius_m=np.float32(10.0), nprobe=np.int32(8))
    assert build.match_radius_m == 10.0 and type(build.match_radius_m) is float
    where = pk.Location(lat=np.float32(55.7), lon=np.float64(13.19))
    assert type(where.lat) is float and where.lat == pytest.approx(55.7, abs=1e-5)


def test_out_of_range_coordinates_and_malformed_cameras_raise_location_error():
    with pytest.raises(pk.LocationError):
        pk.Location(x=1e300, y=0.0)
    with pytest.raises(pk.LocationError):
        pk.Location(x=0.0, y=True)
    with pytest.raises(pk.LocationError):
        pk.Location(x=0.0, y=0.0, rotation=1.0)


def test_localizer_open_with_a_dict_raises_options_error(street_map, tiny_model):
    with pytest.raises(pk.OptionsError, match="from_dict"):
        pk.Localizer.open(street_map, {"model": str(tiny_model)})


@pytest.mark.parametrize("bad_id", [1.7, True, "abc", 2 ** 70, [1, 2], -1, None])
def test_remove_place_with_a_non_integer_id_raises_and_removes_nothing(live, bad_id):
    before = live.map.index.ntotal
    with pytest.raises(pk.OptionsError):
        live.remove_place(bad_id)
    assert live.map.index.ntotal == before
    assert live.remove_place(np.int64(int(live.map.index.ids[0]))) is True


@pytest.mark.parametrize("bad_name", [123, "", "bad \udc80 surrogate", "x" * 2000])
def test_add_place_with_a_bad_name_raises_build_error(live, street, bad_name):
    image = next((street / "queries").glob("*.jpg"))
    with pytest.raises(pk.BuildError):
        live.add_place(image, pk.Location(lat=55.7, lon=13.19), name=bad_name)


def _png(path, width: int, height: int) -> None:
    """A tiny grey PNG file that declares width x height pixels (all zero, deflated)."""
    deflate = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    data = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    from placekit.inference import imageio

    bomb = tmp_path / "bomb.png"
    _png(bomb, 12000, 9000)                          # 108 MP in a few hundred KB
    assert bomb.stat().st_size < 1_000_000
    decoded = []
    monkeypatch.setattr(imageio.cv2, "imdecode", lambda *a: decoded.append(1))
    with pytest.raises(pk.ImageReadError, match="declares"):
        imageio.read_image(bomb)
    assert decoded == []


def test_decoder_assertions_become_image_read_errors(tmp_path, monkeypatch):
    from placekit.inference import imageio

    path = tmp_path / "broken.bmp"
    cv2.imwrite(str(path), np.zeros((32, 32, 3), np.uint8))

    def failing_decoder(*args):
        raise cv2.error("OpenCV(4.x) bmp decoder: !m_buf.empty() in function 'readHeader'")
    monkeypatch.setattr(imageio.cv2, "imdecode", failing_decoder)
    with pytest.raises(pk.ImageReadError, match="cannot be decoded"):
        imageio.read_image(path)


def test_degenerate_matches_verify_nothing_instead_of_raising(monkeypatch):
    from placekit.local import matching

    xy = np.random.default_rng(0).uniform(0, 100, (40, 2)).astype(np.float32)
    pairs = np.stack([np.arange(40), np.arange(40)], axis=1)

    def asserting(*args, **kwargs):
        raise cv2.error("OpenCV(4.x) ptsetregistrator.cpp: !model.empty() in function 'setModelParameters'")
    monkeypatch.setattr(matching.cv2, "findFundamentalMat", asserting)
    assert matching.verified_inliers(xy, xy, pairs).sum() == 0


def test_place_ids_are_never_reused_across_remove_save_and_reopen(live, street, tiny_model):
    image = next((street / "queries").glob("*.jpg"))
    where = pk.Location(lat=55.7, lon=13.19)
    first = live.add_place(image, where, name="first")
    second = live.add_place(image, where, name="second")
    assert second == first + 1
    assert live.remove_place(second)
    live.save()
    with pk.Localizer.open(live.source, pk.LocalizerOptions(model=str(tiny_model))) as reopened:
        third = reopened.add_place(image, where, name="third")
        assert third > second                       # the removed place's id stays retired
        reopened.save()
    with pk.Localizer.open(live.source, pk.LocalizerOptions(model=str(tiny_model))) as again:
        assert again.map.next_place_id() == third + 1


def test_issued_ids_survive_save_and_load(tmp_path, street_map):
    from placekit.mapfile.placemap import PlaceMap

    placemap = PlaceMap.load(street_map)
    try:
        placemap.issued_ids = 100                     # places 40..99 were added and removed once
        placemap.save(tmp_path / "ok.pkmap")
    finally:
        placemap.close()
    reopened = PlaceMap.load(tmp_path / "ok.pkmap")
    try:
        assert reopened.issued_ids == 100 and reopened.next_place_id() == 100
    finally:
        reopened.close()


def test_unwritable_destinations_raise_map_write_error_and_keep_the_old_map(tmp_path, street_map, monkeypatch):
    import os

    from placekit.mapfile import archive as mapfile
    from placekit.mapfile.placemap import PlaceMap

    placemap = PlaceMap.load(street_map)
    try:
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        with pytest.raises(pk.MapWriteError, match="cannot write map"):
            placemap.save(blocker / "sub" / "m.pkmap")            # a path under a file
        target = tmp_path / "kept.pkmap"
        shutil.copy(street_map, target)
        before = target.read_bytes()

        def disk_full(fd):
            raise OSError(28, os.strerror(28))
        monkeypatch.setattr(mapfile.os, "fsync", disk_full)
        with pytest.raises(pk.MapWriteError, match=os.strerror(28)):
            placemap.save(target)
        assert target.read_bytes() == before
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    finally:
        placemap.close()


@pytest.mark.parametrize("memory_mapped", [True, False])
def test_close_while_another_thread_localizes_never_crashes(tmp_path, street_map, street, tiny_model, monkeypatch,
                                                            memory_mapped):
    """Arrays hold a buffer export on the file's bytes (a memory map, or the in-memory copy):
    close() cannot pull them from under a running search. Later calls raise ClosedError."""
    import threading

    from placekit.mapfile import archive as mapfile

    if memory_mapped:
        monkeypatch.setattr(mapfile, "IN_MEMORY_MAX_BYTES", 0)
    path = tmp_path / "live.pkmap"
    shutil.copy(street_map, path)
    image = next((street / "queries").glob("*.jpg"))
    for _ in range(3):
        loc = pk.Localizer.open(path, pk.LocalizerOptions(model=str(tiny_model)))
        assert loc.map.reader.memory_mapped == memory_mapped
        loc.add_place(image, pk.Location(lat=55.7, lon=13.19))
        errors, done = [], threading.Event()

        def worker():
            try:
                while not done.is_set():
                    loc.localize(image)
            except pk.ClosedError:
                pass
            except Exception as exc:                      # noqa: BLE001 - the test reports it
                errors.append(exc)
        thread = threading.Thread(target=worker)
        thread.start()
        loc.close()
        done.set()
        thread.join()
        assert errors == []
        with pytest.raises(pk.ClosedError):
            loc.localize(image)


def test_memory_mapped_map_modified_in_place_raises_map_format_error(tmp_path, street_map, street, tiny_model,
                                                                     monkeypatch):
    from placekit.mapfile import archive as mapfile

    monkeypatch.setattr(mapfile, "IN_MEMORY_MAX_BYTES", 0)      # force the memory-mapped path
    path = tmp_path / "live.pkmap"
    shutil.copy(street_map, path)
    image = next((street / "queries").glob("*.jpg"))
    with pk.Localizer.open(path, pk.LocalizerOptions(model=str(tiny_model))) as loc:
        assert loc.map.reader.memory_mapped
        loc.localize(image)
        with open(path, "r+b") as fh:                               # cp smaller.pkmap live.pkmap
            fh.truncate(path.stat().st_size // 2)
        with pytest.raises(pk.MapFormatError, match="modified in place"):
            loc.localize(image)
        with pytest.raises(pk.MapFormatError, match="modified in place"):
            loc.save()


def test_small_map_modified_in_place_keeps_answering_from_its_copy(tmp_path, street_map, street, tiny_model):
    path = tmp_path / "live.pkmap"
    shutil.copy(street_map, path)
    image = next((street / "queries").glob("*.jpg"))
    with pk.Localizer.open(path, pk.LocalizerOptions(model=str(tiny_model))) as loc:
        assert not loc.map.reader.memory_mapped
        before = loc.localize(image)
        path.write_bytes(b"garbage")
        after = loc.localize(image)
        assert [m.place_id for m in after.matches] == [m.place_id for m in before.matches]


@pytest.fixture()
def ivf_map(tmp_path, tiny_model):
    builder = pk.MapBuilder(pk.BuildOptions(model=str(tiny_model), recipe="IVF8_HNSW16,PQ4", nprobe=4))
    rng = np.random.default_rng(0)
    for i in range(300):
        builder.add_descriptor(rng.normal(size=builder.extractor.dim).astype(np.float32),
                               pk.Location(x=float(i), y=0.0), f"p{i}")
    path = tmp_path / "ivf.pkmap"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pk.CalibrationWarning)      # random descriptors calibrate poorly
        builder.build(path)
    return path


@pytest.mark.parametrize("edit, opens", [
    (lambda m: m["index"]["graph"].update(max_elements=10 ** 12), True),    # graph rebuilt, nothing allocated
    (lambda m: m["index"]["graph"].update(max_elements=5 * 10 ** 7), True),
    (lambda m: m["index"]["search"].update(ef=10 ** 12), False),
    (lambda m: m["index"]["search"].update(nprobe=-3), False),
    (lambda m: m["places"].update(next_id="7"), False),
])
def test_crafted_manifest_numbers_never_allocate_or_crash(tmp_path, ivf_map, tiny_model, edit, opens):
    from test_mapfile import _rewrite_manifest

    crafted = tmp_path / "crafted.pkmap"
    _rewrite_manifest(ivf_map, crafted, edit)
    options = pk.LocalizerOptions(model=str(tiny_model))
    if opens:
        with pk.Localizer.open(crafted, options) as loc:
            assert loc.map.index.ntotal == 300
    else:
        with pytest.raises(pk.MapFormatError):
            pk.Localizer.open(crafted, options)


def test_bad_recipe_and_a_model_for_a_vlad_map_fail_before_any_extraction():
    with pytest.raises(pk.OptionsError, match="recipe"):
        pk.BuildOptions(recipe="IVF64,Bogus")
    with pytest.raises(pk.OptionsError, match="VLAD"):
        pk.BuildOptions(descriptor="vlad", model="gem-fp32")


def test_fuzzed_inputs_raise_only_placekit_errors_and_live_edits_match_the_model(tmp_path, tiny_model):
    """A few hundred cases of ``benchmarks/fuzz_inputs.py`` (thousands are in RESULTS.md)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import fuzz_inputs

    map_path = fuzz_inputs._fixture_map(tmp_path, str(tiny_model))
    result = fuzz_inputs.run(300, seed=1, model=str(tiny_model), map_path=map_path, tmp=tmp_path)
    assert result["failures"] == []
    counts = result["counts"]
    assert all(c["cases"] == 60 for c in counts.values())
    # the fuzzer reaches both outcomes where both exist (it is not rejecting everything up front)
    assert counts["image_file"]["placekit_error"] > 0 and counts["image_file"]["ok"] > 0
    assert counts["options"]["placekit_error"] > 0 and counts["live_map"]["ok"] > 0


def test_crafted_local_feature_sizes_are_a_map_format_error(tmp_path, tiny_model):
    from test_mapfile import _rewrite_manifest

    rng = np.random.default_rng(3)
    builder = pk.MapBuilder(pk.BuildOptions(model=str(tiny_model), local_features="rootsift", max_keypoints=256))
    texture = cv2.resize(rng.integers(0, 255, (60, 80), dtype=np.uint8), (320, 240), interpolation=cv2.INTER_LINEAR)
    for i in range(4):
        builder.add(np.roll(texture, 7 * i, axis=1), pk.Location(x=float(i), y=0.0), f"v{i}")
    with pytest.warns(pk.CalibrationWarning):
        builder.build(tmp_path / "local.pkmap")
    _rewrite_manifest(tmp_path / "local.pkmap", tmp_path / "crafted.pkmap",
                      lambda m: m["local"].update(max_keypoints=10 ** 12))
    with pytest.raises(pk.MapFormatError, match="max_keypoints"):
        pk.Localizer.open(tmp_path / "crafted.pkmap", pk.LocalizerOptions(model=str(tiny_model)))


def test_vlad_map_of_160x120_frames_builds_or_says_why(tmp_path, tiny_model):
    """Tiny frames give few keypoints: the build either succeeds or raises BuildError, never a
    raw cv2.error from verification calibration."""
    rng = np.random.default_rng(4)
    builder = pk.MapBuilder(pk.BuildOptions(descriptor="vlad", local_features="rootsift", vlad_words=4))
    for i in range(12):
        frame = cv2.resize(rng.integers(0, 255, (15, 20, 3), dtype=np.uint8), (160, 120), interpolation=cv2.INTER_CUBIC)
        builder.add(frame, pk.Location(x=10.0 * (i // 2), y=0.0), f"f{i:02d}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pk.CalibrationWarning)
            info = builder.build(tmp_path / "tiny.pkmap")
        assert info.descriptor["kind"] == "vlad"
    except pk.BuildError as exc:
        assert "local features" in str(exc)


def test_single_process_add_many_names_every_failing_image(tmp_path, tiny_model, street):
    folder = tmp_path / "db"
    shutil.copytree(street / "database", folder)
    broken = sorted(folder.iterdir())[-2:]
    for path in broken:
        path.write_bytes(b"\xff\xd8 truncated jpeg")
    builder = pk.MapBuilder(pk.BuildOptions(model=str(tiny_model), match_radius_m=10.0, local_features="rootsift"))
    with pytest.raises(pk.BuildError) as err:
        builder.add_folder(folder, street / "database.csv")
    assert all(p.name in str(err.value) for p in broken) and len(builder) == 0
    builder.add_folder(street / "database", street / "database.csv")  # the good images still go in
    assert len(builder) == 40


def test_add_many_checks_every_item_before_reading_any_image(tmp_path, tiny_model, street):
    builder = pk.MapBuilder(pk.BuildOptions(model=str(tiny_model)))
    image = next((street / "database").iterdir())
    here = pk.Location(x=0.0, y=0.0, z=0.0)
    with pytest.raises(pk.BuildError, match="expected"):
        builder.add_many([(image, here, "a"), "not a tuple"])
    with pytest.raises(pk.BuildError, match="duplicate"):
        builder.add_many([(image, here, "a"), (image, here, "a")])
    with pytest.raises(pk.LocationError):
        builder.add_many([(image, here, "a"), (image, (1.0, 2.0), "b")])
    assert len(builder) == 0
    builder.add_many([(image, here, "a"), (image, here)])  # the name defaults to the file name
    assert len(builder) == 2


def test_ray_executor_without_ray_installed_says_how_to_get_it(monkeypatch):
    import sys

    from placekit.executors import RayExecutor, executor_for

    monkeypatch.setitem(sys.modules, "ray", None)  # as on a runtime-only install
    with pytest.raises(pk.ClusterError, match=r"placekit\[distributed\]"):
        RayExecutor("local")
    assert not executor_for(None).distributed  # no --ray: this process, no Ray needed
    with pytest.raises(pk.ClusterError):
        RayExecutor("local", cpus_per_task=0)
