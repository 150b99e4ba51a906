"""Decoding one image file into an HxWx3 uint8 RGB array, or a one-line reason why not.

The decompression-bomb limit holds in the library, not only in the CLI: the size in the header of every
format OpenCV decodes here -- PNG, JPEG, GIF, BMP, TIFF, WebP, PNM/PAM/PFM, Sun raster, Radiance HDR,
JPEG 2000 and AVIF -- is read before anything is decoded (``header_size``). A file whose header gives no
size (another format, BigTIFF, a damaged header) is refused, unless the caller allows unchecked formats
(``run.allow_unchecked_formats``): then only OpenCV's own limit (``OPENCV_IO_MAX_IMAGE_PIXELS``, which
``featurepipe`` sets, and which not every codec applies before decoding) and the check after decoding hold.
"""
from __future__ import annotations

import re
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


_HDR_RESOLUTION = re.compile(rb"\n\s*([-+][XY])\s+(\d+)\s+([-+][XY])\s+(\d+)\s*\n")
_JP2 = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_HEADER_SCAN = 1 << 16  # bytes searched for a size where it is not at a fixed place (HDR, JPEG 2000, AVIF)


def _hdr_size(data: bytes) -> tuple[int, int] | None:
    """Radiance HDR: the resolution line after the header's empty line, e.g. ``-Y 480 +X 640``."""
    end = data.find(b"\n\n", 0, _HEADER_SCAN)
    match = _HDR_RESOLUTION.match(data, end) if end >= 0 else None
    if match is None:
        return None
    size = {match[1][1:]: int(match[2]), match[3][1:]: int(match[4])}
    return (size[b"X"], size[b"Y"]) if len(size) == 2 else None


def _jpeg2000_size(data: bytes) -> tuple[int, int] | None:
    """A JP2 file's image header box (height, width), or a raw codestream's SIZ segment (extent - offset)."""
    if data.startswith(_JP2):
        at = data.find(b"ihdr", 0, _HEADER_SCAN)
        if at < 0 or len(data) < at + 12:
            return None
        height, width = struct.unpack(">II", data[at + 4:at + 12])
        return width, height
    if len(data) < 24:
        return None
    width, height, x_offset, y_offset = struct.unpack(">IIII", data[8:24])
    return max(width - x_offset, 0), max(height - y_offset, 0)


def _avif_size(data: bytes) -> tuple[int, int] | None:
    """The largest image spatial extent (``ispe``) property of an AVIF file: the full image, not a tile."""
    sizes = []
    at = data.find(b"ispe", 0, _HEADER_SCAN)
    while at >= 0 and len(data) >= at + 16:
        sizes.append(struct.unpack(">II", data[at + 8:at + 16]))
        at = data.find(b"ispe", at + 4, _HEADER_SCAN)
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else None


def _sun_raster_size(data: bytes) -> tuple[int, int] | None:
    return struct.unpack(">II", data[4:12]) if len(data) >= 12 else None


def _pam_size(data: bytes) -> tuple[int, int] | None:
    """PAM (``P7``): the ``WIDTH`` and ``HEIGHT`` lines of its header."""
    fields = dict(re.findall(rb"^(WIDTH|HEIGHT)\s+(\d+)", data[:1024], re.M))
    return (int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])) if len(fields) == 2 else None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The frame header (SOF) of a JPEG file, reached segment by segment (fill bytes skipped)."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        if data[i + 1] == 0xFF:
            i += 1
            continue
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of any format OpenCV decodes here (see the module docstring),
    without decoding; None when the format is unknown or its header gives no size."""
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
    if data[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"PF", b"Pf") and len(data) > 3:
        return _pnm_size(data)
    if data[:2] == b"P7":
        return _pam_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:4] == b"\x59\xa6\x6a\x95":
        return _sun_raster_size(data)
    if data[:2] == b"#?":
        return _hdr_size(data)
    if data.startswith(_JP2) or data[:4] == b"\xff\x4f\xff\x51":
        return _jpeg2000_size(data)
    if data[4:8] == b"ftyp":
        return _avif_size(data)
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


def check_header(data: bytes, max_pixels: int = MAX_PIXELS, unchecked: bool = False) -> None:
    """Refuse, before decoding, an image whose header declares more than ``max_pixels`` pixels, and one whose
    header gives no size unless ``unchecked`` (then OpenCV decides)."""
    if not data:
        raise ImageError("empty file (0 bytes)")
    size = header_size(data)
    if size is None and not unchecked:
        raise ImageError("not a decodable image (no header of a format whose size is checked before decoding; "
                         "run.allow_unchecked_formats lets OpenCV try)")
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageError(f"{size[0]}x{size[1]} pixels exceeds the limit of {max_pixels} (decompression bomb?)")


def decode(data: bytes, max_pixels: int = MAX_PIXELS, unchecked: bool = False) -> np.ndarray:
    """Decode image bytes to HxWx3 uint8 RGB: grey and alpha dropped to RGB, 16-bit scaled, EXIF applied.
    The header is checked first (``check_header``)."""
    import cv2  # here, so that listing a data set does not load OpenCV

    check_header(data, max_pixels, unchecked)
    if data[:2] == b"\xff\xd8" and not data.rstrip(b"\0\r\n ").endswith(b"\xff\xd9"):
        raise ImageError("truncated JPEG (no end-of-image marker)")
    # IMREAD_COLOR applies the EXIF orientation and drops alpha; ANYDEPTH keeps 16-bit samples.
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None or image.size == 0:
        raise ImageError("not a decodable image (unknown format, or corrupt or truncated data)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageError(f"{image.shape[1]}x{image.shape[0]} pixels exceeds the limit of {max_pixels}")
    return to_rgb8(image)


def read_image(path, max_pixels: int = MAX_PIXELS, unchecked: bool = False) -> np.ndarray:
    """Read and decode one file; raises ``ImageError`` (bad image) or ``OSError`` (unreadable file)."""
    with open(path, "rb") as f:
        return decode(f.read(), max_pixels, unchecked)
