"""Validation of client input: images (by magic bytes, every byte decoded), labels, names, ids."""

from __future__ import annotations

import io
import unicodedata
import warnings
from dataclasses import dataclass

import simplejpeg
from PIL import Image

from mobiletrain.core.errors import ErrorCode, MobiletrainError


@dataclass(frozen=True)
class Limits:
    """Input limits; the defaults suit phone photos."""

    max_sample_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_label_length: int = 128
    max_name_length: int = 128
    max_client_id_length: int = 128
    max_page_size: int = 1000
    max_samples_per_project: int = 1_000_000
    max_bytes_per_project: int = 20 * 1024**3
    max_active_jobs_per_project: int = 2
    max_labels_per_project: int = 1000


@dataclass(frozen=True)
class ImageInfo:
    """What decoding an image told us."""

    media_type: str
    width: int
    height: int


def sniff_media_type(data: bytes) -> str | None:
    """Media type by magic bytes (never by file name)."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


_PIL_FORMAT = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


def verify_image(data: bytes, limits: Limits) -> ImageInfo:
    """Decode every byte of an image and return its type and size, or raise a precise error.

    The pixel count is checked from the header before decoding, so a decompression bomb is
    refused without allocating its pixels. JPEGs are entropy-decoded in full (at 1/8 scale,
    which skips most of the inverse DCT, never the data): truncated or corrupt ones fail.
    """
    if not data:
        raise MobiletrainError(ErrorCode.EMPTY_SAMPLE, "sample has no bytes")
    if len(data) > limits.max_sample_bytes:
        raise MobiletrainError(
            ErrorCode.SAMPLE_TOO_LARGE,
            f"sample is {len(data)} bytes; the limit is {limits.max_sample_bytes}",
        )
    media_type = sniff_media_type(data)
    if media_type is None:
        raise MobiletrainError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, "not a JPEG, PNG or WebP image (by magic bytes)"
        )
    if media_type == "image/jpeg":
        info = _verify_jpeg_strict(data, limits)
        if info is not None:
            return info
        # libjpeg-turbo found something to warn about (or a colour space it is not asked to
        # convert here): Pillow's path below gives the verdict, exactly as before.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[media_type]])
            width, height = img.size
            if width * height > limits.max_pixels:
                raise MobiletrainError(
                    ErrorCode.IMAGE_TOO_LARGE,
                    f"image is {width}x{height} pixels; the limit is {limits.max_pixels} pixels",
                )
            if media_type == "image/jpeg":
                # libjpeg still entropy-decodes every block (so corrupt or truncated data
                # fails), but scales the inverse DCT down 8x: half the cost of a full decode.
                img.draft(img.mode, (max(1, width // 8), max(1, height // 8)))
            img.load()  # decode: truncated or corrupt data fails here
            if media_type == "image/jpeg" and _ends_in_fill(img):
                _check_jpeg_complete(data, media_type)
    except MobiletrainError:
        raise
    except Image.DecompressionBombError:
        raise MobiletrainError(
            ErrorCode.IMAGE_TOO_LARGE, f"image has more than {limits.max_pixels} pixels"
        ) from None
    except Exception as exc:  # Pillow raises many types for bad data
        raise MobiletrainError(
            ErrorCode.CORRUPT_IMAGE, f"{media_type} could not be decoded: {type(exc).__name__}"
        ) from None
    return ImageInfo(media_type=media_type, width=width, height=height)


def _verify_jpeg_strict(data: bytes, limits: Limits) -> ImageInfo | None:
    """A JPEG decoded by libjpeg-turbo in strict mode, at 1/8 scale; None when it is not clean.

    Strict mode turns every libjpeg warning into an error: data ending early, an end-of-image
    marker before the last block, extraneous bytes, bad Huffman codes. The 1/8 scale skips the
    inverse DCT's work, not the data: every entropy-coded block is still decoded. A JPEG that
    passes here is one libjpeg decodes without a single complaint, so Pillow (which only fails
    on errors, not warnings) would accept it too. Missing data is CORRUPT_IMAGE here, however
    little is missing; any other complaint goes to Pillow for the verdict it always gave.
    Measured on 224x224 photos: 0.19 ms against 0.25 ms for Pillow's draft decode, and the
    header is read in C (Pillow parses the markers in Python).
    """
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if width * height > limits.max_pixels:
        raise MobiletrainError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"image is {width}x{height} pixels; the limit is {limits.max_pixels} pixels",
        )
    if colorspace not in ("Gray", "YCbCr", "RGB"):
        return None  # CMYK and YCCK: Pillow decodes them
    try:
        simplejpeg.decode_jpeg(
            data,
            colorspace="GRAY" if colorspace == "Gray" else "RGB",
            min_height=1,
            min_width=1,
            min_factor=8,
            strict=True,
        )
    except ValueError as exc:
        if "premature end" in str(exc).lower():
            # libjpeg's own words for data missing (JWRN_JPEG_EOF, JWRN_HIT_MARKER): it would
            # fill the missing blocks with grey, which Pillow accepts when the cut is small.
            raise MobiletrainError(
                ErrorCode.CORRUPT_IMAGE,
                "image/jpeg is truncated: its data ends before the last block the header declares",
            ) from None
        return None
    except MemoryError:
        return None
    return ImageInfo(media_type="image/jpeg", width=width, height=height)


_JPEG_FILL = 128
"""What libjpeg decodes a block to when the data ran out before it (all coefficients zero)."""


def _ends_in_fill(img: Image.Image) -> bool:
    """Whether the last pixel (one per 8x8 block when DCT-scaled) is libjpeg's fill value."""
    pixel = img.getpixel((img.width - 1, img.height - 1))
    values = pixel if isinstance(pixel, tuple) else (pixel,)
    return all(v == _JPEG_FILL for v in values)


def _check_jpeg_complete(data: bytes, media_type: str) -> None:
    """Refuse a JPEG whose scan data ends before its last block.

    libjpeg does not fail when an end-of-image marker comes early (a header declaring more
    pixels than the data holds, or a file cut and re-terminated): it warns, and fills every
    missing block with zeros, which decode to exactly 128 in every channel. Pillow swallows the
    warning, so the fill is looked for instead: the last block decoded at full scale is uniform
    128 only when data is missing (a real photo's noise never gives 64 identical pixels).
    """
    with Image.open(io.BytesIO(data), formats=["JPEG"]) as full:
        full.load()
        box = (max(0, full.width - 8), max(0, full.height - 8), full.width, full.height)
        extrema = full.crop(box).getextrema()
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    if all(low == high == _JPEG_FILL for low, high in bands):  # type: ignore[misc]
        raise MobiletrainError(
            ErrorCode.CORRUPT_IMAGE,
            f"{media_type} is truncated: its data ends before the last block the header declares",
        )


def _check_text(value: str, what: str, max_length: int, code: ErrorCode) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MobiletrainError(code, f"{what} must not be empty")
    if len(value) > max_length:
        raise MobiletrainError(code, f"{what} is longer than {max_length} characters")
    for ch in value:
        # Unicode letters are welcome; control and format characters are not.
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise MobiletrainError(code, f"{what} contains a control character (U+{ord(ch):04X})")
    if value != value.strip():
        raise MobiletrainError(code, f"{what} has leading or trailing spaces")
    return value


def check_label(label: str, limits: Limits) -> str:
    """A label: 1..128 characters, Unicode allowed, no control characters."""
    return _check_text(label, "label", limits.max_label_length, ErrorCode.INVALID_LABEL)


def check_name(name: str, limits: Limits) -> str:
    """A project name: like a label, and without '/' so it is safe in URLs."""
    _check_text(name, "name", limits.max_name_length, ErrorCode.INVALID_NAME)
    if "/" in name or "\\" in name:
        raise MobiletrainError(ErrorCode.INVALID_NAME, "name must not contain '/' or '\\'")
    return name


def check_client_id(client_id: str, limits: Limits) -> str:
    """A client-chosen sample id (the idempotency key)."""
    return _check_text(
        client_id, "client sample id", limits.max_client_id_length, ErrorCode.INVALID_CLIENT_ID
    )
