"""Bad input raises a typed placekit error, never an untyped one (options, ids, names,
locations, image files, degenerate geometry)."""
from __future__ import annotations

import shutil
import struct
import zlib

import cv2
import numpy as np
import pytest

import placekit as pk


@pytest.fixture()
def live(tmp_path, street_map, tiny_model):
    path = tmp_path / "live.pkmap"
    shutil.copy(street_map, path)
    loc = pk.Localizer.open(path, pk.LocalizerOptions(model=str(tiny_model)))
    yield loc
    loc.close()


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
    from placekit import imageio

    bomb = tmp_path / "bomb.png"
    _png(bomb, 12000, 9000)                          # 108 MP in a few hundred KB
    assert bomb.stat().st_size < 1_000_000
    decoded = []
    monkeypatch.setattr(imageio.cv2, "imdecode", lambda *a: decoded.append(1))
    with pytest.raises(pk.ImageReadError, match="declares"):
        imageio.read_image(bomb)
    assert decoded == []


def test_decoder_assertions_become_image_read_errors(tmp_path, monkeypatch):
    from placekit import imageio

    path = tmp_path / "broken.bmp"
    cv2.imwrite(str(path), np.zeros((32, 32, 3), np.uint8))

    def failing_decoder(*args):
        raise cv2.error("OpenCV(4.x) bmp decoder: !m_buf.empty() in function 'readHeader'")
    monkeypatch.setattr(imageio.cv2, "imdecode", failing_decoder)
    with pytest.raises(pk.ImageReadError, match="cannot be decoded"):
        imageio.read_image(path)


def test_degenerate_matches_verify_nothing_instead_of_raising(monkeypatch):
    from placekit import matching

    xy = np.random.default_rng(0).uniform(0, 100, (40, 2)).astype(np.float32)
    pairs = np.stack([np.arange(40), np.arange(40)], axis=1)

    def asserting(*args, **kwargs):
        raise cv2.error("OpenCV(4.x) ptsetregistrator.cpp: !model.empty() in function 'setModelParameters'")
    monkeypatch.setattr(matching.cv2, "findFundamentalMat", asserting)
    assert matching.verified_inliers(xy, xy, pairs).sum() == 0
