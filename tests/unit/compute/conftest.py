"""Shared fixtures for the compute tests."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def digits_png() -> tuple[list[bytes], list[int]]:
    """scikit-learn digits (8x8, values 0..16) as grayscale PNG bytes and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    encoded = []
    for p in pixels:
        buffer = io.BytesIO()
        Image.fromarray(p).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return encoded, [int(t) for t in digits.target]
