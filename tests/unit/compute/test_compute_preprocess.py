"""Decoding and normalisation (numpy/Pillow only)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mobiletrain.compute.preprocess import decode_batch, decode_image, normalize
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import ColorMode, InputSpec, Normalization


def encode_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_rgb_is_resized_to_width_by_height() -> None:
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[..., 0] = 200  # pure red
    spec = InputSpec(width=16, height=8, color_mode=ColorMode.RGB)
    out = decode_image(encode_png(pixels), spec)
    assert out.shape == (8, 16, 3)
    assert out.dtype == np.uint8
    assert np.all(out[..., 0] == 200) and np.all(out[..., 1:] == 0)


def test_grayscale_uses_luma_and_keeps_a_channel_axis() -> None:
    pixels = np.zeros((10, 10, 3), dtype=np.uint8)
    pixels[..., 1] = 255  # pure green -> L = 255 * 587 / 1000
    spec = InputSpec(width=10, height=10, color_mode=ColorMode.GRAYSCALE)
    out = decode_image(encode_png(pixels), spec)
    assert out.shape == (10, 10, 1)
    assert np.all(np.abs(out.astype(int) - 150) <= 1)


def test_grayscale_source_to_rgb_replicates_channels() -> None:
    pixels = np.full((8, 8), 77, dtype=np.uint8)
    out = decode_image(encode_png(pixels), InputSpec(width=8, height=8))
    assert out.shape == (8, 8, 3)
    assert np.all(out == 77)


def test_bilinear_upscale_interpolates() -> None:
    pixels = np.array([[0, 255]], dtype=np.uint8)  # 2x1: black | white
    spec = InputSpec(width=8, height=8, color_mode=ColorMode.GRAYSCALE)
    row = decode_image(encode_png(pixels), spec)[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0) and 0 < row[3] < 255


def test_exif_orientation_is_applied() -> None:
    # A 4 wide x 2 high image tagged "rotate 90 CW" must come out 2 wide x 4 high.
    img = Image.new("L", (4, 2), 0)
    img.putpixel((0, 0), 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(img, "PNG", exif=exif)
    spec = InputSpec(width=2, height=4, color_mode=ColorMode.GRAYSCALE)
    out = decode_image(data, spec)[..., 0]
    # Rotating 90 degrees clockwise moves the top-left pixel to the top-right.
    assert out[0, 1] == 255 and out[0, 0] == 0


def test_rgba_and_webp_and_jpeg_decode() -> None:
    spec = InputSpec(width=8, height=8)
    rgba = Image.new("RGBA", (12, 12), (10, 20, 30, 128))
    assert decode_image(_encode(rgba, "PNG"), spec).shape == (8, 8, 3)
    assert decode_image(_encode(rgba.convert("RGB"), "WEBP", lossless=True), spec)[0, 0, 2] == 30
    big = Image.new("RGB", (400, 300), (0, 0, 255))
    jpeg = decode_image(_encode(big, "JPEG", quality=95), spec)
    assert jpeg.shape == (8, 8, 3) and jpeg[..., 2].min() > 240


def test_corrupt_bytes_raise_corrupt_image() -> None:
    with pytest.raises(MobiletrainError) as info:
        decode_image(b"not an image", InputSpec())
    assert info.value.code is ErrorCode.CORRUPT_IMAGE
    png = encode_png(np.zeros((16, 16), dtype=np.uint8))
    with pytest.raises(MobiletrainError):
        decode_image(png[: len(png) // 2], InputSpec())


def test_decode_batch_shapes() -> None:
    spec = InputSpec(width=6, height=5, color_mode=ColorMode.GRAYSCALE)
    data = [encode_png(np.full((3, 3), v, dtype=np.uint8)) for v in (0, 100, 255)]
    batch = decode_batch(data, spec)
    assert batch.shape == (3, 5, 6, 1) and batch.dtype == np.uint8
    assert batch[:, 0, 0, 0].tolist() == [0, 100, 255]
    assert decode_batch([], spec).shape == (0, 5, 6, 1)


@pytest.mark.parametrize(
    ("normalization", "expected"),
    [
        (Normalization.ZERO_ONE, [0.0, 0.5019608, 1.0]),
        (Normalization.MINUS_ONE_ONE, [-1.0, 0.003921628, 1.0]),
        (Normalization.RAW, [0.0, 128.0, 255.0]),
    ],
)
def test_normalize(normalization: Normalization, expected: list[float]) -> None:
    spec = InputSpec(normalization=normalization)
    out = normalize(np.array([0, 128, 255], dtype=np.uint8), spec)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
