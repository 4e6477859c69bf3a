"""Shared fixtures: image makers and real stores in temporary folders."""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def encode_image(array: np.ndarray, fmt: str = "PNG", quality: int = 90) -> bytes:
    """Encode a uint8 HxW or HxWxC array."""
    buf = io.BytesIO()
    img = Image.fromarray(array)
    if fmt == "JPEG":
        img.save(buf, format=fmt, quality=quality)
    else:
        img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    """Factory of small distinct images: make_image(seed, fmt='PNG', size=16)."""

    def make(seed: int = 0, fmt: str = "PNG", size: int = 16, mode: str = "RGB") -> bytes:
        rng = np.random.default_rng(seed)
        shape = (size, size, 3) if mode == "RGB" else (size, size)
        return encode_image(rng.integers(0, 256, shape, dtype=np.uint8), fmt)

    return make
