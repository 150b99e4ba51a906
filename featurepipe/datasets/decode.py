"""Decoding one image file into an HxWx3 uint8 RGB array, or a one-line reason why not.

The decompression-bomb limit holds in the library, not only in the CLI: the size in the header of PNG,
JPEG, GIF, BMP, TIFF, WebP and PNM files is checked before anything is decoded, and ``featurepipe``
sets OpenCV's own limit (``OPENCV_IO_MAX_IMAGE_PIXELS``, read once when OpenCV loads) for other formats.
"""
from __future__ import annotations

import struct

import numpy as np

MAX_PIXELS = 89_478_485  # the decompression-bomb limit Pillow uses (0.25 GiB of RGBA)
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageError(ValueError):
    """A file that is not a usable image; the message is the reason, without the path."""


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first image directory of a (classic) TIFF file."""
    order = "<" if data[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack(order + "I", data[4:8])
        (count,) = struct.unpack(order + "H", data[offset:offset + 2])
        size = {}
        for i in range(count):
            tag, kind, _, value = struct.unpack(order + "HHI4s", data[offset + 2 + 12 * i:offset + 14 + 12 * i])
            if tag in (256, 257):
                size[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), value[:2 if kind == 3 else 4])[0]
        return (size[256], size[257]) if len(size) == 2 else None
    except (struct.error, KeyError):
        return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30:
        return struct.unpack("<H", data[26:28])[0] & 0x3FFF, struct.unpack("<H", data[28:30])[0] & 0x3FFF
    return None


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    fields = []
    for line in data[2:256].split(b"\n"):
        fields += line.split(b"#")[0].split()
        if len(fields) >= 2:
            return (int(fields[0]), int(fields[1])) if fields[0].isdigit() and fields[1].isdigit() else None
    return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, GIF, BMP, TIFF, WebP or PNM header without decoding; None when
    unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if data[:4] in (b"II*\0", b"MM\0*"):
        return _tiff_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:1] == b"P" and data[1:2] in b"123456" and len(data) > 3:
        return _pnm_size(data)
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
