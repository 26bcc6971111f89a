"""Frames: every accepted form, and a typed error for each kind of bad input."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import placekit as pk
from placekit.inference.imageio import read_exif_gps, read_image, to_bgr


@pytest.mark.parametrize("shape", [(40, 60), (40, 60, 1), (40, 60, 3), (40, 60, 4)])
def test_accepted_uint8_shapes(shape):
    out = to_bgr(np.full(shape, 7, np.uint8))
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8 and out.flags.c_contiguous


def test_float_frames_in_unit_range_are_scaled():
    out = to_bgr(np.full((32, 32, 3), 0.5, np.float32))
    assert out.dtype == np.uint8 and int(out[0, 0, 0]) == 128


@pytest.mark.parametrize("frame, match", [
    (np.zeros((40, 60, 3), np.int32), "dtype"),
    (np.zeros((40, 60, 3), bool), "dtype"),
    (np.zeros((40, 60, 2), np.uint8), "channels"),
    (np.zeros((40, 60, 5), np.uint8), "channels"),
    (np.zeros((2, 40, 60, 3), np.uint8), "shape"),
    (np.zeros((0, 60, 3), np.uint8), "empty"),
    (np.zeros((8, 8, 3), np.uint8), "sides"),
    (np.full((40, 60, 3), np.nan, np.float32), "NaN"),
    (np.full((40, 60, 3), 3.0, np.float32), r"\[0, 1\]"),
    ([[1, 2], [3, 4]], "numpy array"),
    (None, "numpy array"),
])
def test_bad_frames_raise_invalid_image(frame, match):
    with pytest.raises(pk.InvalidImageError, match=match):
        to_bgr(frame)


def test_invalid_image_is_also_a_value_error():
    with pytest.raises(ValueError):
        to_bgr(np.zeros((40, 60, 3), np.int16))


def test_unreadable_files_raise_image_read_error(tmp_path):
    with pytest.raises(pk.ImageReadError, match="cannot read"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(pk.ImageReadError, match="empty"):
        read_image(tmp_path / "empty.jpg")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 50)
    with pytest.raises(pk.ImageReadError, match="corrupt"):
        read_image(tmp_path / "corrupt.jpg")
    with pytest.raises(OSError):  # ImageReadError is an OSError too
        read_image(tmp_path / "missing.png")


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :20] = 255  # white band on the left of the stored image
    im = Image.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = 6  # stored rotated: display needs 90 degrees clockwise
    im.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "rotated.jpg")
    assert out.shape[:2] == (80, 40)
    assert out[:20].mean() > 200 and out[-20:].mean() < 50  # the band is now on top


def test_exif_gps_is_read(tmp_path):
    im = Image.fromarray(np.zeros((32, 32, 3), np.uint8))
    exif = im.getexif()
    gps = exif.get_ifd(0x8825)
    gps.update({1: "S", 2: (33.0, 51.0, 36.0), 3: "E", 4: (151.0, 12.0, 54.0), 5: 0, 6: 42.5})
    im.save(tmp_path / "gps.jpg", exif=exif)
    lat, lon, alt = read_exif_gps(tmp_path / "gps.jpg")
    assert lat == pytest.approx(-(33 + 51 / 60 + 36 / 3600))
    assert lon == pytest.approx(151 + 12 / 60 + 54 / 3600)
    assert alt == pytest.approx(42.5)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "plain.jpg")
    assert read_exif_gps(tmp_path / "plain.jpg") is None
