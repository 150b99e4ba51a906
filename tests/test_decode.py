"""Decoding: colour order, grey/alpha/16-bit conversion, EXIF orientation, and every kind of bad file."""
import struct
import zlib

import cv2
import numpy as np
import pytest

from featurepipe.datasets import ImageError, decode, read_image
from featurepipe.datasets.decode import header_size


def encode(image_bgr, ext=".png"):
    ok, buf = cv2.imencode(ext, image_bgr)
    assert ok
    return buf.tobytes()


def test_rgb_order_and_dtype():
    bgr = np.zeros((5, 7, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR
    rgb = decode(encode(bgr))
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == 200).all() and (rgb[..., 1:] == 0).all()


def test_grey_becomes_three_equal_channels():
    grey = np.arange(35, dtype=np.uint8).reshape(5, 7)
    rgb = decode(encode(grey))
    assert rgb.shape == (5, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], grey)


def test_alpha_is_dropped():
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 1] = 90
    bgra[..., 3] = 10
    rgb = decode(encode(bgra))
    assert rgb.shape == (4, 4, 3) and (rgb[..., 1] == 90).all()


def test_sixteen_bit_is_scaled_not_truncated():
    grey16 = np.array([[0, 257, 32896, 65535]], np.uint16)
    rgb = decode(encode(grey16))
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 128, 255])


def _jpeg_with_orientation(image_bgr, orientation):
    """A JPEG whose EXIF (APP1) block carries the given orientation tag."""
    jpeg = encode(image_bgr, ".jpg")
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + b"\x00\x00\x00\x00"
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def test_exif_orientation_is_applied():
    image = np.zeros((16, 32, 3), np.uint8)
    image[:, :16] = 255  # left half white, wide image
    rotated = decode(_jpeg_with_orientation(image, 6))  # 6: rotate 90 degrees clockwise to display
    assert rotated.shape == (32, 16, 3)
    assert rotated[:16].mean() > 200 and rotated[16:].mean() < 50  # the white half is now on top


def test_empty_file():
    with pytest.raises(ImageError, match="empty"):
        decode(b"")


def test_non_image_bytes():
    with pytest.raises(ImageError, match="not a decodable image"):
        decode(b"this is a text file, not an image\n" * 10)


def test_truncated_jpeg():
    data = encode(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), ".jpg")
    with pytest.raises(ImageError, match="truncated"):
        decode(data[: len(data) // 2])


def test_truncated_png():
    data = encode(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), ".png")
    with pytest.raises(ImageError):
        decode(data[: len(data) // 2])


def _png_header(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_decompression_bomb_is_refused_from_the_header():
    with pytest.raises(ImageError, match="exceeds the limit"):
        decode(_png_header(100_000, 100_000) + b"\x00" * 100)
    with pytest.raises(ImageError, match="exceeds the limit"):
        decode(encode(np.zeros((20, 20, 3), np.uint8)), max_pixels=100)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif", ".webp", ".gif", ".ppm", ".pam", ".pfm", ".ras", ".jp2",
                                 ".hdr", ".avif"])
def test_header_size_matches_the_image(ext):
    """Every format OpenCV decodes here has its size read from the header."""
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)  # JPEG 2000: not too small
    if ext in (".pfm", ".hdr"):
        image = image.astype(np.float32) / 255
    data = encode(image, ext)
    assert header_size(data) == (53, 37)
    assert decode(data).shape == (37, 53, 3)


def test_a_format_without_a_header_check_needs_the_option():
    data = b"\x76\x2f\x31\x01" + b"\0" * 200  # an OpenEXR signature: no size check here
    with pytest.raises(ImageError, match="run.allow_unchecked_formats"):
        decode(data)
    with pytest.raises(ImageError, match="not a decodable image"):
        decode(data, unchecked=True)  # allowed: OpenCV tries, and cannot


def test_unreadable_file_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        read_image(tmp_path / "missing.png")
