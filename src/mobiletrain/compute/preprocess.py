"""Image decoding and normalisation shared by training, evaluation and the API.

Numpy and Pillow only (no TensorFlow): the API process imports this module too.
The steps mirror what an app does before inference: decode, apply the EXIF orientation,
convert to RGB or 8-bit grayscale (Pillow's ITU-R 601-2 luma), bilinear resize straight to
``(width, height)`` without keeping the aspect ratio, then ``pixel * scale + offset``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import ColorMode, InputSpec


def _pil_mode(spec: InputSpec) -> str:
    return "RGB" if spec.color_mode is ColorMode.RGB else "L"


def decode_image(data: bytes, spec: InputSpec) -> np.ndarray:
    """Decode an encoded JPEG/PNG/WebP image into a ``uint8`` array of shape ``(H, W, C)``.

    Raises ``CORRUPT_IMAGE`` when Pillow cannot decode the bytes and ``IMAGE_TOO_LARGE`` for
    decompression bombs.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            # JPEG only: let the decoder scale down by a power of two first (phone photos are
            # large). Keep >= 2x the target on both sides, whatever the EXIF rotation, so the
            # bilinear resize below still does the real downscaling.
            side = 2 * max(spec.width, spec.height)
            img.draft(None, (side, side))
            oriented = ImageOps.exif_transpose(img)
            converted = oriented.convert(_pil_mode(spec))
            if converted.size != (spec.width, spec.height):
                converted = converted.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
            array = np.asarray(converted, dtype=np.uint8)
    except Image.DecompressionBombError:
        raise MobiletrainError(ErrorCode.IMAGE_TOO_LARGE) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise MobiletrainError(ErrorCode.CORRUPT_IMAGE) from None
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    return array


def decode_batch(images: Sequence[bytes], spec: InputSpec) -> np.ndarray:
    """Decode many images into one ``uint8`` array of shape ``(N, H, W, C)``."""
    out = np.empty((len(images), spec.height, spec.width, spec.channels), dtype=np.uint8)
    for i, data in enumerate(images):
        out[i] = decode_image(data, spec)
    return out


def normalize(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Map ``uint8`` pixels to the ``float32`` model input described by ``spec``."""
    scale, offset = spec.normalization.scale_offset()
    result = pixels.astype(np.float32) * np.float32(scale)
    if offset:
        result += np.float32(offset)
    return result
