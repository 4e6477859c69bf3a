"""Resumable upload sessions and tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from mobiletrain.core.types import (
    Token,
    UploadSession,
)
from mobiletrain.store import schema as t
from mobiletrain.store.sql.base import SqlStoreBase
from mobiletrain.store.sql.rows import _row_token, _row_upload


class UploadRows(SqlStoreBase):
    """Resumable upload sessions and tokens."""

    # -- resumable uploads ------------------------------------------------------------------
    def create_upload(self, session: UploadSession) -> UploadSession:
        """Insert, or return the session that already exists for the client id."""
        values = {
            "id": session.id,
            "project_id": session.project_id,
            "client_id": session.client_id,
            "label": session.label,
            "size": session.size,
            "sha256": session.sha256,
            "offset": session.offset,
            "chunks": session.chunks,
            "created_at": session.created_at,
            "expires_at": session.expires_at,
            "uploaded_by": session.uploaded_by,
        }
        try:
            self._tx(lambda c: c.execute(t.upload_sessions.insert().values(**values)))
        except IntegrityError:
            existing = self.find_upload(session.project_id, session.client_id)
            if existing is None:
                raise
            return existing
        return session

    def get_upload(self, upload_id: str) -> UploadSession | None:
        """A session by id."""
        q = sa.select(t.upload_sessions).where(t.upload_sessions.c.id == upload_id)
        r = self._read(lambda c: c.execute(q).first())
        return _row_upload(r) if r else None

    def find_upload(self, project_id: str, client_id: str) -> UploadSession | None:
        """The session of (project, client id)."""
        q = sa.select(t.upload_sessions).where(
            t.upload_sessions.c.project_id == project_id,
            t.upload_sessions.c.client_id == client_id,
        )
        r = self._read(lambda c: c.execute(q).first())
        return _row_upload(r) if r else None

    def advance_upload(self, upload_id: str, offset: int, chunk: str, length: int) -> bool:
        """Compare-and-set on the offset, so two writers never both append at one offset."""

        def tx(c: Connection) -> bool:
            row = c.execute(
                sa.select(t.upload_sessions.c.offset, t.upload_sessions.c.chunks).where(
                    t.upload_sessions.c.id == upload_id
                )
            ).first()
            if row is None or row.offset != offset:
                return False
            updated = c.execute(
                t.upload_sessions.update()
                .where(t.upload_sessions.c.id == upload_id, t.upload_sessions.c.offset == offset)
                .values(offset=offset + length, chunks=[*row.chunks, chunk])
            )
            return bool(updated.rowcount)

        return self._tx(tx)

    def delete_upload(self, upload_id: str) -> None:
        """Forget a session."""
        self._tx(
            lambda c: c.execute(
                t.upload_sessions.delete().where(t.upload_sessions.c.id == upload_id)
            )
        )

    def pending_upload_bytes(self, project_id: str, now: datetime) -> int:
        """Declared bytes of a project's live (unexpired) resumable uploads."""
        u = t.upload_sessions
        q = sa.select(sa.func.coalesce(sa.func.sum(u.c.size), 0)).where(
            u.c.project_id == project_id, u.c.expires_at > now
        )
        return int(self._read(lambda c: c.execute(q).scalar()) or 0)

    def delete_expired_uploads(self, now: datetime, limit: int = 1000) -> list[UploadSession]:
        """Delete up to ``limit`` expired sessions; returns them (their chunks are garbage)."""
        u = t.upload_sessions

        def tx(c: Connection) -> list[UploadSession]:
            rows = c.execute(sa.select(u).where(u.c.expires_at <= now).limit(limit)).all()
            if rows:
                c.execute(u.delete().where(u.c.id.in_([r.id for r in rows])))
            return [_row_upload(r) for r in rows]

        return self._tx(tx)

    # -- tokens -----------------------------------------------------------------------------
    def create_token(self, token: Token) -> None:
        """Insert a token record."""
        self._tx(
            lambda c: c.execute(
                t.tokens.insert().values(
                    id=token.id,
                    role=token.role.value,
                    project_id=token.project_id,
                    name=token.name,
                    token_hash=token.token_hash,
                    created_at=token.created_at,
                    expires_at=token.expires_at,
                    revoked_at=token.revoked_at,
                )
            )
        )

    def get_token_by_hash(self, token_hash: str) -> Token | None:
        """Look a token up by the sha256 of its secret."""
        q = sa.select(t.tokens).where(t.tokens.c.token_hash == token_hash)
        r = self._read(lambda c: c.execute(q).first())
        return _row_token(r) if r else None

    def list_tokens(self, project_id: str | None) -> list[Token]:
        """Tokens newest first."""
        q = sa.select(t.tokens)
        if project_id is not None:
            q = q.where(t.tokens.c.project_id == project_id)
        q = q.order_by(t.tokens.c.created_at.desc())
        return [_row_token(r) for r in self._read(lambda c: c.execute(q).all())]

    def revoke_token(self, token_id: str, when: datetime) -> Token | None:
        """Set revoked_at (kept if already revoked)."""

        def tx(c: Connection) -> Any:
            c.execute(
                t.tokens.update()
                .where(t.tokens.c.id == token_id, t.tokens.c.revoked_at.is_(None))
                .values(revoked_at=when)
            )
            return c.execute(sa.select(t.tokens).where(t.tokens.c.id == token_id)).first()

        r = self._tx(tx)
        return _row_token(r) if r else None

    def count_tokens(self) -> int:
        """Number of token records."""
        q = sa.select(sa.func.count()).select_from(t.tokens)
        return int(self._read(lambda c: c.execute(q).scalar()) or 0)
