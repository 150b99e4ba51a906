"""Decoding one image file into an HxWx3 uint8 RGB array, or a one-line reason why not."""
from __future__ import annotations

import struct

import numpy as np

MAX_PIXELS = 89_478_485  # the decompression-bomb limit Pillow uses (0.25 GiB of RGBA)
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageError(ValueError):
    """A file that is not a usable image; the message is the reason, without the path."""


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, GIF or BMP header without decoding; None when unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 <= len(data):
            if data[i] != 0xFF:
                return None
            marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
            if marker in _JPEG_SOF:
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return width, height
            i += 2 + length
    return None


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR output (8/16-bit or float, 1 or 3 channels) as HxWx3 uint8 RGB."""
    import cv2

    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif image.dtype.kind == "f":
        image = np.clip(np.nan_to_num(image) * 255 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to HxWx3 uint8 RGB: grey and alpha dropped to RGB, 16-bit scaled, EXIF applied."""
    import cv2  # here, so that listing a data set does not load OpenCV

    if not data:
        raise ImageError("empty file (0 bytes)")
    size = header_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageError(f"{size[0]}x{size[1]} pixels exceeds the limit of {max_pixels} (decompression bomb?)")
    if data[:2] == b"\xff\xd8" and not data.rstrip(b"\0\r\n ").endswith(b"\xff\xd9"):
        raise ImageError("truncated JPEG (no end-of-image marker)")
    # IMREAD_COLOR applies the EXIF orientation and drops alpha; ANYDEPTH keeps 16-bit samples.
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None or image.size == 0:
        raise ImageError("not a decodable image (unknown format, or corrupt or truncated data)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageError(f"{image.shape[1]}x{image.shape[0]} pixels exceeds the limit of {max_pixels}")
    return to_rgb8(image)


def read_image(path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read and decode one file; raises ``ImageError`` (bad image) or ``OSError`` (unreadable file)."""
    with open(path, "rb") as f:
        return decode(f.read(), max_pixels)
