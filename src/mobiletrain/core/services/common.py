"""Rules every service shares: paging and the clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import (
    ModelVersion,
)
from mobiletrain.core.validation import (
    Limits,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def newest_released(versions: Sequence[ModelVersion]) -> int | None:
    """The newest version that is not a candidate (``versions`` newest first)."""
    return next((v.version for v in versions if v.status != "candidate"), None)


def parse_page_token(token: str) -> int:
    """Page tokens are opaque to clients; here they are a decimal cursor."""
    if not token:
        return 0
    if not (token.isascii() and token.isdigit()) or len(token) > 18:
        raise MobiletrainError(ErrorCode.INVALID_PAGE, "invalid page token")
    return int(token)


def check_page_size(size: int, limits: Limits, default: int = 100) -> int:
    """0 means the default; above the limit is the limit (a page size is a maximum, as both
    wires document it); below 0 is INVALID_PAGE. The one rule for gRPC and REST."""
    if size == 0:
        return min(default, limits.max_page_size)
    if size < 0:
        raise MobiletrainError(ErrorCode.INVALID_PAGE, f"page_size must be at least 0, got {size}")
    return min(size, limits.max_page_size)
