"""Shapes every resource shares: errors, health, the format names."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from mobiletrain.core.types import (
    ModelFormat,
)

FORMAT_NAMES = [f.value for f in ModelFormat]
"""Every model format's wire name, in ModelFormat order."""


class ErrorPublic(BaseModel):
    """The body of every error response (the same catalog as gRPC)."""

    code: int = Field(description="Stable numeric error code (see the error catalog), e.g. 10.")
    error: str = Field(description="Stable lower-case name of the code, e.g. `project_not_found`.")
    message: str = Field(description="Human-readable explanation; do not parse it.")
    details: dict[str, Any] | None = Field(
        default=None, description="Optional structured details (e.g. validation errors)."
    )


class HealthPublic(BaseModel):
    """Liveness answer."""

    status: Literal["ok", "degraded"] = Field(
        description="`ok`, or `degraded` while the server answers but needs attention "
        "(storage below its free-space reserve: uploads are refused with code 74; samples "
        "whose bytes were found missing at start-up)."
    )
    reasons: list[str] | None = Field(
        default=None, description="Why it is degraded, one line each (absent when `ok`)."
    )
