"""Tokens: creation, verification and revocation.

A secret is ``mt_`` + 43 random URL-safe characters (256 bits). Only its sha256 is stored, so a
leaked database does not leak credentials; verification is one indexed lookup, cached for a few
seconds (a revocation takes effect within :data:`CACHE_SECONDS`).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from mobiletrain.core.auth import Action, Principal, Role, require
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.ports import MetadataStore
from mobiletrain.core.types import Token

CACHE_SECONDS = 5.0
_PREFIX = "mt_"


def hash_secret(secret: str) -> str:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenService:
    """Create, verify, list and revoke tokens."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def create(
        self, role: Role, project_id: str | None = None, name: str = "", ttl_days: int = 0
    ) -> tuple[Token, str]:
        """Create a token; returns it and its secret (shown once)."""
        require(Action.MANAGE_TOKENS)
        if role is Role.DEVICE and not project_id:
            raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "a device token needs a project")
        if role is Role.ADMIN and project_id:
            raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "admin tokens are not per project")
        if not 0 <= ttl_days <= 3650:
            raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "ttl_days must be in 0..3650")
        if len(name) > 128:
            raise MobiletrainError(ErrorCode.INVALID_NAME, "token name is longer than 128")
        return self._create(role, project_id, name, ttl_days)

    def create_bootstrap_admin(self) -> str:
        """The first admin token of a fresh server (no caller to authorise yet)."""
        _, secret = self._create(Role.ADMIN, None, "bootstrap admin", 0)
        return secret

    def _create(
        self, role: Role, project_id: str | None, name: str, ttl_days: int
    ) -> tuple[Token, str]:
        secret = _PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        token = Token(
            id=str(uuid.uuid4()),
            role=role,
            project_id=project_id,
            name=name,
            token_hash=hash_secret(secret),
            created_at=now,
            expires_at=now + timedelta(days=ttl_days) if ttl_days else None,
        )
        self.store.create_token(token)
        return token, secret

    def cached(self, secret: str | None) -> Principal | None:
        """The principal of a secret verified less than :data:`CACHE_SECONDS` ago, else None.

        Never touches the database, so an event loop may call it; :meth:`verify` does the rest.
        """
        if not secret:
            return None
        return self._cache_hit(hash_secret(secret), time.monotonic())

    def _cache_hit(self, digest: str, now: float) -> Principal | None:
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        return None

    def verify(self, secret: str | None) -> Principal:
        """The caller a secret stands for, or UNAUTHENTICATED."""
        if not secret:
            raise MobiletrainError(ErrorCode.UNAUTHENTICATED, "no token: send 'Bearer <token>'")
        digest = hash_secret(secret)
        now = time.monotonic()
        hit = self._cache_hit(digest, now)
        if hit is not None:
            return hit
        token = self.store.get_token_by_hash(digest) if secret.startswith(_PREFIX) else None
        if token is None or not token.is_valid(datetime.now(UTC)):
            with self._lock:
                self._cache.pop(digest, None)
            raise MobiletrainError(ErrorCode.UNAUTHENTICATED, "unknown, expired or revoked token")
        principal = Principal(token_id=token.id, role=token.role, project_id=token.project_id)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal

    def list(self, project_id: str | None = None) -> list[Token]:
        """Tokens newest first."""
        require(Action.MANAGE_TOKENS)
        return self.store.list_tokens(project_id)

    def revoke(self, token_id: str) -> Token:
        """Revoke a token; cached verifications expire within CACHE_SECONDS."""
        require(Action.MANAGE_TOKENS)
        token = self.store.revoke_token(token_id, datetime.now(UTC))
        if token is None:
            raise MobiletrainError(ErrorCode.TOKEN_NOT_FOUND, f"token {token_id!r} not found")
        with self._lock:
            self._cache.pop(token.token_hash, None)
        return token
