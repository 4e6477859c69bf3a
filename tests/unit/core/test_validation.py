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
