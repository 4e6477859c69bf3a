"""Rules both transports share, decided once in core (issue 15): page sizes, file names."""

from __future__ import annotations

import pytest

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.services import check_page_size
from mobiletrain.core.types import DEFAULT_MODEL_FORMAT, ModelFormat
from mobiletrain.core.validation import Limits


@pytest.mark.parametrize(
    ("asked", "given"), [(0, 100), (1, 1), (7, 7), (1000, 1000), (1001, 1000), (10**9, 1000)]
)
def test_a_page_size_is_a_maximum_clamped_to_the_servers(asked: int, given: int) -> None:
    assert check_page_size(asked, Limits(max_page_size=1000)) == given


def test_the_default_page_size_never_exceeds_a_smaller_server_maximum() -> None:
    assert check_page_size(0, Limits(max_page_size=20)) == 20


@pytest.mark.parametrize("asked", [-1, -(2**31)])
def test_a_negative_page_size_is_invalid_page(asked: int) -> None:
    with pytest.raises(MobiletrainError) as err:
        check_page_size(asked, Limits())
    assert err.value.code is ErrorCode.INVALID_PAGE and str(asked) in err.value.message


def test_file_names_inside_a_version_and_for_a_download() -> None:
    assert ModelFormat.FLOAT32.file_name == "model-float32.tflite"
    assert ModelFormat.KERAS.file_name == "model-keras.keras"
    assert ModelFormat.HEAD_WEIGHTS.file_name == "model-head-weights.bin"
    assert ModelFormat.DYNAMIC_INT8.download_name("digits", 3) == "digits-v3-dynamic-int8.tflite"
    assert DEFAULT_MODEL_FORMAT is ModelFormat.FLOAT32
