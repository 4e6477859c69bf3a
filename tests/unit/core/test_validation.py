"""Image and text validation: every bad input gets its own stable code."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.validation import (
    Limits,
    _verify_jpeg_strict,
    check_label,
    check_name,
    sniff_media_type,
    verify_image,
)

LIMITS = Limits()


def code_of(fn: Callable[[], object]) -> ErrorCode:
    with pytest.raises(MobiletrainError) as err:
        fn()
    return err.value.code


@pytest.mark.parametrize(
    "fmt,media", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_accepts_each_format(make_image: Callable[..., bytes], fmt: str, media: str) -> None:
    info = verify_image(make_image(1, fmt, size=20), LIMITS)
    assert (info.media_type, info.width, info.height) == (media, 20, 20)


def test_type_is_sniffed_not_named() -> None:
    assert sniff_media_type(b"GIF89a....") is None
    assert (
        code_of(lambda: verify_image(b"GIF89a" + b"\0" * 100, LIMITS))
        is ErrorCode.UNSUPPORTED_MEDIA_TYPE
    )
    assert code_of(lambda: verify_image(b"hello world", LIMITS)) is ErrorCode.UNSUPPORTED_MEDIA_TYPE


def test_empty_and_oversized() -> None:
    assert code_of(lambda: verify_image(b"", LIMITS)) is ErrorCode.EMPTY_SAMPLE
    small = Limits(max_sample_bytes=10)
    assert (
        code_of(lambda: verify_image(b"\x89PNG\r\n\x1a\n" + b"0" * 20, small))
        is ErrorCode.SAMPLE_TOO_LARGE
    )


def test_truncated_image_is_corrupt(make_image: Callable[..., bytes]) -> None:
    data = make_image(2, "JPEG", size=64)
    assert code_of(lambda: verify_image(data[: len(data) // 2], LIMITS)) is ErrorCode.CORRUPT_IMAGE
    png = make_image(3, "PNG", size=64)
    assert code_of(lambda: verify_image(png[:-40], LIMITS)) is ErrorCode.CORRUPT_IMAGE


def test_decompression_bomb_refused_before_decoding() -> None:
    # A 20000x20000 PNG of one colour is tiny on disk but 400 Mpx when decoded.
    buf = io.BytesIO()
    Image.new("L", (20000, 20000)).save(buf, format="PNG")
    assert code_of(lambda: verify_image(buf.getvalue(), LIMITS)) is ErrorCode.IMAGE_TOO_LARGE


def test_labels_and_names() -> None:
    assert check_label("猫 cat", LIMITS) == "猫 cat"
    for bad in ["", "   ", "a\x00b", "tab\there", "x" * 200, " lead"]:
        assert code_of(lambda bad=bad: check_label(bad, LIMITS)) is ErrorCode.INVALID_LABEL
    for bad in ["../etc", "a/b", "a\\b", "\n"]:
        assert code_of(lambda bad=bad: check_name(bad, LIMITS)) is ErrorCode.INVALID_NAME


def test_grayscale_and_rgba_images_are_fine() -> None:
    for mode, shape in (("L", (10, 12)), ("RGBA", (10, 12, 4))):
        buf = io.BytesIO()
        Image.fromarray(np.zeros(shape, np.uint8), mode=mode).save(buf, format="PNG")
        assert verify_image(buf.getvalue(), LIMITS).width == 12


def _jpeg(size: int = 256, mode: str = "RGB", **save: object) -> bytes:
    rng = np.random.default_rng(size)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buf, "JPEG", **save)
    return buf.getvalue()


def _jpeg_declaring(data: bytes, side: int) -> bytes:
    """``data`` with its SOF0 header saying side x side pixels."""
    sof = data.index(b"\xff\xc0")
    out = bytearray(data)
    out[sof + 5 : sof + 9] = side.to_bytes(2, "big") * 2
    return bytes(out)


def test_jpeg_with_missing_data_is_corrupt() -> None:
    good = _jpeg()
    scan = good.index(b"\xff\xda")
    progressive = _jpeg(progressive=True)
    bad = {
        "cut": good[: len(good) // 2],
        "cut and re-terminated": good[: len(good) // 2] + b"\xff\xd9",
        "header only": good[: scan + 20] + b"\xff\xd9",
        "declares more pixels than its data": _jpeg_declaring(good, 2000),
        "progressive, cut": progressive[: len(progressive) // 2],
        "one byte short": good[:-3] + b"\xff\xd9",
    }
    for name, data in bad.items():
        code = code_of(lambda data=data: verify_image(data, LIMITS))
        assert code is ErrorCode.CORRUPT_IMAGE, name
        # The strict libjpeg-turbo pass refuses each itself ("one byte short" is a JPEG that
        # Pillow alone accepted: the last block's few missing bits do not show as grey fill).
        assert (
            code_of(lambda data=data: _verify_jpeg_strict(data, LIMITS)) is ErrorCode.CORRUPT_IMAGE
        ), name


def test_jpeg_kinds_are_accepted_by_the_strict_pass() -> None:
    for data, size in (
        (_jpeg(64), 64),
        (_jpeg(64, "L"), 64),
        (_jpeg(64, progressive=True), 64),
        (_jpeg(64, subsampling=0), 64),
        (_jpeg(1), 1),
    ):
        info = _verify_jpeg_strict(data, LIMITS)
        assert info is not None and (info.width, info.height) == (size, size)
        assert verify_image(data, LIMITS) == info


def test_cmyk_jpeg_goes_to_pillow_and_is_accepted() -> None:
    buf = io.BytesIO()
    Image.new("CMYK", (40, 30), (1, 2, 3, 4)).save(buf, "JPEG")
    assert _verify_jpeg_strict(buf.getvalue(), LIMITS) is None
    info = verify_image(buf.getvalue(), LIMITS)
    assert (info.media_type, info.width, info.height) == ("image/jpeg", 40, 30)


def test_jpeg_bomb_is_refused_from_its_header() -> None:
    bomb = _jpeg_declaring(_jpeg(64), 20000)  # 400 Mpx declared in a 2 KB file
    assert code_of(lambda: verify_image(bomb, LIMITS)) is ErrorCode.IMAGE_TOO_LARGE
    assert code_of(lambda: _verify_jpeg_strict(bomb, LIMITS)) is ErrorCode.IMAGE_TOO_LARGE


def test_jpeg_libjpeg_only_warns_about_keeps_pillows_verdict() -> None:
    # Stray bytes before the end marker: a libjpeg warning, which Pillow has always let
    # through (the pixels are all there). The strict pass declines; the verdict stays Pillow's.
    good = _jpeg(64)
    eoi = good.rindex(b"\xff\xd9")
    stray = good[:eoi] + b"\x00\x01\x02" + good[eoi:]
    assert _verify_jpeg_strict(stray, LIMITS) is None
    assert verify_image(stray, LIMITS).width == 64
