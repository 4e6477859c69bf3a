"""Object-detection boxes: parsing, validation codes 120-124 and the derived sample label."""

from __future__ import annotations

import math

import pytest

from mobiletrain.core.annotations import (
    MAX_BOXES,
    NO_BOXES_LABEL,
    Box,
    boxes_from_json,
    boxes_to_json,
    check_boxes,
    sample_label,
)
from mobiletrain.core.errors import ErrorCode, MobiletrainError


def _code(fn: object, *args: object, **kwargs: object) -> ErrorCode:
    with pytest.raises(MobiletrainError) as err:
        fn(*args, **kwargs)  # type: ignore[operator]
    return err.value.code


def test_json_roundtrip() -> None:
    raw = [{"label": "cat", "x_min": 0.1, "y_min": 0.2, "x_max": 0.5, "y_max": 0.6}]
    boxes = boxes_from_json(raw)
    assert boxes == [Box("cat", 0.1, 0.2, 0.5, 0.6)]
    assert boxes_to_json(boxes) == raw
    assert boxes_from_json([{"label": "a", "x_min": 0, "y_min": 0, "x_max": 1, "y_max": 1}]) == [
        Box("a", 0.0, 0.0, 1.0, 1.0)
    ]


@pytest.mark.parametrize(
    "value",
    [
        {"label": "cat"},  # not a list
        ["cat"],  # not an object
        [{"label": "cat", "x_min": 0.1, "y_min": 0.2, "x_max": 0.5}],  # missing y_max
        [{"label": "cat", "x_min": "0.1", "y_min": 0.2, "x_max": 0.5, "y_max": 0.6}],
        [{"label": "cat", "x_min": True, "y_min": 0.2, "x_max": 0.5, "y_max": 0.6}],
        [{"label": 3, "x_min": 0.1, "y_min": 0.2, "x_max": 0.5, "y_max": 0.6}],
        [{"label": "c", "x_min": 0.1, "y_min": 0.2, "x_max": 0.5, "y_max": 0.6, "score": 1}],
        None,
    ],
)
def test_malformed_json_is_invalid_annotation(value: object) -> None:
    assert _code(boxes_from_json, value) is ErrorCode.INVALID_ANNOTATION


@pytest.mark.parametrize(
    ("box", "code"),
    [
        (Box("cat", -0.01, 0.2, 0.5, 0.6), ErrorCode.BOX_OUT_OF_IMAGE),
        (Box("cat", 0.1, 0.2, 1.2, 0.6), ErrorCode.BOX_OUT_OF_IMAGE),
        (Box("cat", math.nan, 0.2, 0.5, 0.6), ErrorCode.BOX_OUT_OF_IMAGE),
        (Box("cat", 0.1, 0.2, 0.5, math.inf), ErrorCode.BOX_OUT_OF_IMAGE),
        (Box("cat", 0.5, 0.2, 0.5, 0.6), ErrorCode.BOX_DEGENERATE),
        (Box("cat", 0.1, 0.7, 0.5, 0.6), ErrorCode.BOX_DEGENERATE),
        (Box("cat", 0.1, 0.2, 0.105, 0.6), ErrorCode.BOX_DEGENERATE),  # 0.5 px of 100
        (Box("", 0.1, 0.2, 0.5, 0.6), ErrorCode.UNKNOWN_BOX_LABEL),
        (Box(" cat", 0.1, 0.2, 0.5, 0.6), ErrorCode.UNKNOWN_BOX_LABEL),
        (Box(NO_BOXES_LABEL, 0.1, 0.2, 0.5, 0.6), ErrorCode.UNKNOWN_BOX_LABEL),
        (Box("ca\x00t", 0.1, 0.2, 0.5, 0.6), ErrorCode.UNKNOWN_BOX_LABEL),
        (Box("horse", 0.1, 0.2, 0.5, 0.6), ErrorCode.UNKNOWN_BOX_LABEL),  # fixed set
    ],
)
def test_check_boxes_codes(box: Box, code: ErrorCode) -> None:
    assert _code(check_boxes, [box], 100, 100, ["cat", "dog"]) is code


def test_check_boxes_accepts_edges_and_open_sets() -> None:
    edge = [Box("cat", 0.0, 0.0, 1.0, 1.0), Box("x", 0.0, 0.0, 0.01, 0.01)]
    assert check_boxes(edge, 100, 100) == edge  # one pixel exactly; open label set
    assert check_boxes([], 100, 100, ["cat"]) == []


def test_too_many_boxes() -> None:
    box = Box("cat", 0.1, 0.1, 0.5, 0.5)
    assert len(check_boxes([box] * MAX_BOXES, 10, 10)) == MAX_BOXES
    assert _code(check_boxes, [box] * (MAX_BOXES + 1), 10, 10) is ErrorCode.TOO_MANY_BOXES
    raw = [box.to_dict()] * (MAX_BOXES + 1)
    assert _code(boxes_from_json, raw) is ErrorCode.TOO_MANY_BOXES


def test_sample_label_is_the_most_frequent_box_label_first_on_ties() -> None:
    def b(label: str) -> Box:
        return Box(label, 0.1, 0.1, 0.5, 0.5)

    assert sample_label([]) == NO_BOXES_LABEL
    assert sample_label([b("dog"), b("cat"), b("cat")]) == "cat"
    assert sample_label([b("dog"), b("cat"), b("cat"), b("dog")]) == "dog"
    assert sample_label([b("cat"), b("dog")]) == "cat"


def test_codes_are_stable() -> None:
    assert [
        c.number
        for c in (
            ErrorCode.INVALID_ANNOTATION,
            ErrorCode.BOX_OUT_OF_IMAGE,
            ErrorCode.BOX_DEGENERATE,
            ErrorCode.UNKNOWN_BOX_LABEL,
            ErrorCode.TOO_MANY_BOXES,
            ErrorCode.ANNOTATION_FORMAT,
        )
    ] == [120, 121, 122, 123, 124, 125]
