"""Tokens: create, list and revoke credentials (admin tokens only)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from mobiletrain.api.rest.deps import ContainerDep
from mobiletrain.api.rest.errors import error_docs
from mobiletrain.core.auth import Role
from mobiletrain.core.types import Token

router = APIRouter(tags=["tokens"], responses=error_docs(400, 401, 403, 404, 500))


class TokenCreate(BaseModel):
    """A token to create."""

    model_config = ConfigDict(strict=True)

    kind: Literal["admin", "device"] = Field(description="`admin` or `device`.")
    project: str = Field(default="", description="Project id or name (device tokens only).")
    name: str = Field(default="", max_length=128, description="A human-readable name.")
    ttl_days: int = Field(default=0, ge=0, le=3650, description="Lifetime in days; 0 = none.")


class TokenPublic(BaseModel):
    """A token record (never its secret)."""

    id: str = Field(description="Token id, used to revoke it.")
    kind: str = Field(description="`admin` or `device`.")
    project_id: str | None = Field(description="The project of a device token.")
    name: str = Field(description="Human-readable name.")
    created_at: datetime = Field(description="Creation time (UTC).")
    expires_at: datetime | None = Field(description="Expiry time (UTC), null = never.")
    revoked_at: datetime | None = Field(description="Revocation time (UTC), null = valid.")


class TokenCreated(TokenPublic):
    """A new token with its secret, shown this once."""

    token: str = Field(description="The secret: send `Authorization: Bearer <token>`.")


class TokenListPublic(BaseModel):
    """Tokens, newest first."""

    tokens: list[TokenPublic] = Field(description="The tokens.")


def _public(token: Token) -> dict[str, object]:
    return {
        "id": token.id,
        "kind": token.role.value,
        "project_id": token.project_id,
        "name": token.name,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
    }


@router.post("/tokens", status_code=status.HTTP_201_CREATED, summary="Create a token")
def create_token(body: TokenCreate, container: ContainerDep) -> TokenCreated:
    """Create an admin token, or a device token bound to one project (PROJECT_NOT_FOUND,
    code 10). The secret is in the reply only."""
    project_id = container.projects.get(body.project).id if body.project else None
    token, secret = container.tokens.create(Role(body.kind), project_id, body.name, body.ttl_days)
    return TokenCreated(token=secret, **_public(token))  # type: ignore[arg-type]


@router.get("/tokens", summary="List tokens")
def list_tokens(
    container: ContainerDep,
    project: str = Query(default="", description="Only this project's tokens (id or name)."),
) -> TokenListPublic:
    """Tokens newest first, without secrets."""
    project_id = container.projects.get(project).id if project else None
    return TokenListPublic(
        tokens=[TokenPublic(**_public(t)) for t in container.tokens.list(project_id)]  # type: ignore[arg-type]
    )


@router.delete("/tokens/{token_id}", responses=error_docs(404), summary="Revoke a token")
def revoke_token(
    container: ContainerDep, token_id: str = Path(description="Token id.")
) -> TokenPublic:
    """Revoke a token at once (TOKEN_NOT_FOUND, 404, code 62)."""
    return TokenPublic(**_public(container.tokens.revoke(token_id)))  # type: ignore[arg-type]
