"""Object-detection annotations: the :class:`Box` domain type and its validation.

A box is a label plus ``x_min, y_min, x_max, y_max``, floats normalised to 0..1 of the stored
image's width and height (origin top-left, x right, y down, after the EXIF orientation, as
``compute.preprocess.decode_image`` sees the image). Every check raises a stable code
(120-124, see :mod:`mobiletrain.core.errors`) before anything is stored.

A detection sample's label is set by the server, never by the client: the most frequent box
label (ties: the first in the annotation), or :data:`NO_BOXES_LABEL` for an image with no
boxes, so stratified splits and label counts keep working.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mobiletrain.core.errors import ErrorCode, MobiletrainError

MAX_BOXES = 100
"""The most boxes one image may carry (TOO_MANY_BOXES beyond)."""

NO_BOXES_LABEL = "_no_boxes_"
"""The label of a detection image without boxes (a background image; never a class)."""

MAX_BOX_LABEL_LENGTH = 128

_COORDS = ("x_min", "y_min", "x_max", "y_max")


@dataclass(frozen=True)
class Box:
    """One labelled box, coordinates normalised to 0..1 of the image."""

    label: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"label", "x_min", "y_min", "x_max", "y_max"}``."""
        return {
            "label": self.label,
            "x_min": self.x_min,
            "y_min": self.y_min,
            "x_max": self.x_max,
            "y_max": self.y_max,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Box:
        """Parse one box object; INVALID_ANNOTATION when fields are missing or not numbers.

        Only the shape is checked here; :func:`check_boxes` checks ranges and labels.
        """
        if not isinstance(data, dict):
            raise MobiletrainError(
                ErrorCode.INVALID_ANNOTATION, f"a box must be a JSON object, got {_kind(data)}"
            )
        missing = [k for k in ("label", *_COORDS) if k not in data]
        if missing:
            raise MobiletrainError(
                ErrorCode.INVALID_ANNOTATION, f"a box is missing {', '.join(missing)}"
            )
        unknown = sorted(set(data) - {"label", *_COORDS})
        if unknown:
            raise MobiletrainError(
                ErrorCode.INVALID_ANNOTATION,
                f"a box has unknown fields {unknown}; allowed: label, {', '.join(_COORDS)}",
            )
        label = data["label"]
        if not isinstance(label, str):
            raise MobiletrainError(
                ErrorCode.INVALID_ANNOTATION, f"a box label must be a string, got {_kind(label)}"
            )
        coords: list[float] = []
        for key in _COORDS:
            value = data[key]
            # bool is an int in Python; true/false is never a coordinate.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise MobiletrainError(
                    ErrorCode.INVALID_ANNOTATION, f"box {key} must be a number, got {_kind(value)}"
                )
            coords.append(float(value))
        return cls(label, *coords)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def boxes_from_json(value: Any) -> list[Box]:
    """A JSON list of box objects → boxes (shape only; INVALID_ANNOTATION otherwise)."""
    if not isinstance(value, list):
        raise MobiletrainError(
            ErrorCode.INVALID_ANNOTATION, f"boxes must be a JSON list, got {_kind(value)}"
        )
    if len(value) > MAX_BOXES:
        raise too_many_boxes(len(value))
    return [Box.from_dict(item) for item in value]


def boxes_to_json(boxes: Iterable[Box]) -> list[dict[str, Any]]:
    """Boxes → their JSON list (storage, REST)."""
    return [b.to_dict() for b in boxes]


def too_many_boxes(count: int) -> MobiletrainError:
    """TOO_MANY_BOXES quoting the count and the limit."""
    return MobiletrainError(
        ErrorCode.TOO_MANY_BOXES, f"an image may have at most {MAX_BOXES} boxes, got {count}"
    )


def check_box_label(label: str, known: Sequence[str] | None) -> str:
    """A box label: 1..128 characters, no control characters or outer spaces, not reserved,
    and in ``known`` when the project's label set is fixed (None: an open set)."""

    def bad(why: str) -> MobiletrainError:
        return MobiletrainError(ErrorCode.UNKNOWN_BOX_LABEL, f"box label {label!r} {why}")

    if not label.strip():
        raise bad("is empty")
    if len(label) > MAX_BOX_LABEL_LENGTH:
        raise bad(f"is longer than {MAX_BOX_LABEL_LENGTH} characters")
    if label != label.strip():
        raise bad("has leading or trailing spaces")
    for ch in label:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise bad(f"contains a control character (U+{ord(ch):04X})")
    if label == NO_BOXES_LABEL:
        raise bad("is reserved for images without boxes")
    if known is not None and label not in known:
        raise bad(f"is not one of the project's labels: {', '.join(known)}")
    return label


def check_boxes(
    boxes: Sequence[Box],
    width: int,
    height: int,
    labels: Sequence[str] | None = None,
) -> list[Box]:
    """Validate boxes of an image ``width`` x ``height`` pixels (after its EXIF orientation).

    ``labels``: the project's fixed label set, or None for an open set (any well-formed label).
    Raises TOO_MANY_BOXES, BOX_OUT_OF_IMAGE (outside 0..1, NaN, infinite), BOX_DEGENERATE
    (``max <= min``, or narrower/shorter than one pixel) or UNKNOWN_BOX_LABEL, naming the
    box by its position. Returns the boxes with coordinates rounded to 6 decimals (a millionth
    of the image), so a float32 wire (gRPC) and a float64 one (REST, JSON) store the same values.
    """
    if len(boxes) > MAX_BOXES:
        raise too_many_boxes(len(boxes))
    out: list[Box] = []
    for i, raw in enumerate(boxes):
        box = rounded(raw)
        where = f"box {i} ({box.label!r})"
        for key in _COORDS:
            value = getattr(box, key)
            if not math.isfinite(value) or not 0.0 <= value <= 1.0:
                raise MobiletrainError(
                    ErrorCode.BOX_OUT_OF_IMAGE,
                    f"{where}: {key} = {value} is outside 0..1 of the image",
                )
        if box.x_max <= box.x_min or box.y_max <= box.y_min:
            raise MobiletrainError(
                ErrorCode.BOX_DEGENERATE,
                f"{where}: needs x_min < x_max and y_min < y_max, got "
                f"x {box.x_min}..{box.x_max}, y {box.y_min}..{box.y_max}",
            )
        # Below one pixel of the stored image a box marks nothing the model can see.
        w_px, h_px = (box.x_max - box.x_min) * width, (box.y_max - box.y_min) * height
        if width > 0 and height > 0 and (w_px < 1.0 - 1e-6 or h_px < 1.0 - 1e-6):
            raise MobiletrainError(
                ErrorCode.BOX_DEGENERATE,
                f"{where}: is {w_px:.2f} x {h_px:.2f} pixels of a {width}x{height} image; "
                "a box must be at least one pixel each way",
            )
        check_box_label(box.label, labels)
        out.append(box)
    return out


def rounded(box: Box) -> Box:
    """``box`` with its coordinates rounded to 6 decimals (NaN and infinities kept)."""

    def r(value: float) -> float:
        return round(value, 6) if math.isfinite(value) else value

    return Box(box.label, r(box.x_min), r(box.y_min), r(box.x_max), r(box.y_max))


def sample_label(boxes: Sequence[Box]) -> str:
    """The label a detection sample is stored under: its most frequent box label (ties: the
    one that comes first in the annotation), or :data:`NO_BOXES_LABEL` without boxes."""
    if not boxes:
        return NO_BOXES_LABEL
    counts = Counter(b.label for b in boxes)
    top = max(counts.values())
    return next(b.label for b in boxes if counts[b.label] == top)


def new_box_labels(boxes: Iterable[Box], known: Iterable[str]) -> list[str]:
    """Box labels not in ``known``, in first-seen order, each once (an open label set grows
    by these)."""
    seen = set(known)
    out: list[str] = []
    for box in boxes:
        if box.label not in seen:
            seen.add(box.label)
            out.append(box.label)
    return out
