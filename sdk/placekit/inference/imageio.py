"""Frames in: validation of arrays, decoding of files (EXIF orientation applied), EXIF GPS.

A frame is an ``(H, W, 3)`` uint8 BGR array (OpenCV's order), an ``(H, W)`` or ``(H, W, 1)``
grey array, an ``(H, W, 4)`` BGRA array (alpha dropped), a float array with values in
``[0, 1]``, or a path to an image file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from placekit.errors import ImageReadError, InvalidImageError

Frame = Union[np.ndarray, str, os.PathLike]
MIN_SIDE = 16
MAX_SIDE = 20000
MAX_PIXELS = 100_000_000  # 100 megapixels: larger files are refused before decoding
MAX_FILE_BYTES = 512 * 1024 * 1024


def to_bgr(frame: Frame) -> np.ndarray:
    """Any accepted frame -> contiguous ``(H, W, 3)`` uint8 BGR array."""
    if isinstance(frame, (str, os.PathLike)):
        return read_image(frame)
    if not isinstance(frame, np.ndarray):
        raise InvalidImageError(f"a frame must be a numpy array or an image path, got {type(frame).__name__}")
    image = _as_uint8(frame)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3:
        channels = image.shape[2]
        if channels == 1:
            image = cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
        elif channels == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        elif channels != 3:
            raise InvalidImageError(f"a frame needs 1, 3 (BGR) or 4 (BGRA) channels, got shape {frame.shape}")
    else:
        raise InvalidImageError(f"a frame must be (H, W) or (H, W, C), got shape {frame.shape}")
    return np.ascontiguousarray(image)


def _as_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.size == 0:
        raise InvalidImageError(f"the frame is empty (shape {frame.shape})")
    if frame.ndim in (2, 3):
        h, w = frame.shape[:2]
        if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
            raise InvalidImageError(f"frame sides must be within {MIN_SIDE}..{MAX_SIDE} px, got {w}x{h}")
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype in (np.float32, np.float64, np.float16):
        if not np.isfinite(frame).all():
            raise InvalidImageError("the frame holds NaN or infinite values")
        lo, hi = float(frame.min()), float(frame.max())
        if lo < 0.0 or hi > 1.0:
            raise InvalidImageError(
                f"float frames must hold values in [0, 1], got [{lo:.3g}, {hi:.3g}]; pass uint8 for 0..255 data"
            )
        return np.round(frame * 255.0).astype(np.uint8)
    raise InvalidImageError(f"frames must be uint8 (or float in [0, 1]), got dtype {frame.dtype}")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to BGR uint8, rotated upright by its EXIF orientation tag.

    The header is read first: a file over ``MAX_FILE_BYTES``, or whose header declares more
    than ``MAX_PIXELS`` pixels or a side over ``MAX_SIDE`` (a decompression bomb: a 100 KB PNG
    can declare 30000 x 30000), raises ``ImageReadError`` before anything is decoded; so does
    every decoder failure."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImageReadError(f"image file {path} is larger than {MAX_FILE_BYTES:,} bytes")
        encoded = path.read_bytes()
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc
    if not encoded:
        raise ImageReadError(f"image file {path} is empty")
    _check_declared_size(path, encoded)
    try:
        image = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)  # applies EXIF orientation
    except cv2.error as exc:
        raise ImageReadError(f"image file {path} cannot be decoded: {str(exc).strip().splitlines()[-1]}") from exc
    if image is None:
        raise ImageReadError(f"image file {path} is corrupt or not a supported image format")
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ImageReadError(f"image {path} is too small ({w}x{h}); need >= {MIN_SIDE} px")
    if max(h, w) > MAX_SIDE or h * w > MAX_PIXELS:
        raise ImageReadError(f"image {path} is too large ({w}x{h}); sides up to {MAX_SIDE} px, {MAX_PIXELS:,} pixels")
    return image


def _check_declared_size(path: Path, encoded: bytes) -> None:
    """Raise when the header declares too many pixels. Formats Pillow cannot parse are left to
    OpenCV (which still fails typed, above)."""
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own DecompressionBombWarning
            with Image.open(io.BytesIO(encoded)) as im:  # reads the header only; no copy
                w, h = im.size
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"image {path} declares too many pixels (not decoded): {exc}") from exc
    except Exception:  # noqa: BLE001 - any header Pillow rejects
        return
    if max(w, h) > MAX_SIDE or w * h > MAX_PIXELS:
        raise ImageReadError(
            f"image {path} declares {w}x{h} pixels; sides up to {MAX_SIDE} px, {MAX_PIXELS:,} pixels (not decoded)"
        )


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(f"{folder} is not a directory")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


GPS_IFD = 0x8825


def read_exif_gps(path: str | os.PathLike) -> tuple[float, float, float | None] | None:
    """``(lat, lon, alt)`` in degrees / metres from an image's EXIF GPS tags, or None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            gps = im.getexif().get_ifd(GPS_IFD)
    except (OSError, UnidentifiedImageError) as exc:
        raise ImageReadError(f"cannot read EXIF of {path}: {exc}") from exc
    if not gps or 2 not in gps or 4 not in gps:
        return None
    try:
        lat = _dms_to_degrees(gps[2]) * (-1.0 if str(gps.get(1, "N")).upper().startswith("S") else 1.0)
        lon = _dms_to_degrees(gps[4]) * (-1.0 if str(gps.get(3, "E")).upper().startswith("W") else 1.0)
        alt = None
        if 6 in gps:
            alt = float(gps[6]) * (-1.0 if gps.get(5, 0) in (1, b"\x01") else 1.0)
    except (TypeError, ValueError, ZeroDivisionError, IndexError):
        return None
    return lat, lon, alt


def _dms_to_degrees(dms) -> float:
    d, m, s = (float(v) for v in dms)
    return d + m / 60.0 + s / 3600.0
