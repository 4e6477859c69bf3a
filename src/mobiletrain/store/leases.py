"""Leader leases in the metadata database (SQLite or PostgreSQL): :class:`SqlLeaseStore`.

One row per lease name (table ``leases``, migration 0010). Every change is one conditional
statement, so two replicas racing for a free lease cannot both win: the database serialises
the two updates and the second one no longer matches its ``WHERE``. Expiry times are taken from
the database's clock (``clock_timestamp()`` on PostgreSQL, ``julianday('now')`` on SQLite) so
replicas with skewed clocks agree on when a lease ran out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.leader import Lease, LeaseLost, LeaseStore
from mobiletrain.store.schema import leases

T = TypeVar("T")


def _db_now(conn: Connection) -> sa.ColumnElement[float]:
    """The database's current time in epoch seconds, as an SQL expression."""
    if conn.dialect.name == "postgresql":
        return sa.cast(
            sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Float
        )  # clock_timestamp: not frozen at the transaction's start like now()
    return sa.cast((sa.func.julianday("now") - 2440587.5) * 86400.0, sa.Float)


def _check(name: str, holder: str, ttl_s: float) -> None:
    if not name or len(name) > 200 or not holder or len(holder) > 200:
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT, "lease name and holder must be 1-200 characters"
        )
    if not ttl_s > 0:
        raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "lease time must be positive")


class SqlLeaseStore(LeaseStore):
    """:class:`LeaseStore` over an SQLAlchemy engine (the metadata store's own engine)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _row(self, conn: Connection, name: str, live_only: bool = True) -> Lease | None:
        q = sa.select(leases).where(leases.c.name == name)
        if live_only:
            q = q.where(leases.c.holder.is_not(None), leases.c.expires_at > _db_now(conn))
        r = conn.execute(q).first()
        if r is None or r.holder is None:
            return None
        return Lease(r.name, r.holder, int(r.token), float(r.expires_at))

    def acquire(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        """Take a free/expired lease (token + 1), extend our own live one, else None."""
        _check(name, holder, ttl_s)
        for _ in range(3):
            try:
                with self.engine.begin() as c:
                    now = _db_now(c)
                    # Ours and live: extend, same token.
                    mine = c.execute(
                        leases.update()
                        .where(
                            leases.c.name == name,
                            leases.c.holder == holder,
                            leases.c.expires_at > now,
                        )
                        .values(expires_at=now + ttl_s)
                    ).rowcount
                    if not mine:
                        # Free or expired (anyone's, ours included): a new holding, new token.
                        mine = c.execute(
                            leases.update()
                            .where(
                                leases.c.name == name,
                                sa.or_(leases.c.holder.is_(None), leases.c.expires_at <= now),
                            )
                            .values(holder=holder, token=leases.c.token + 1, expires_at=now + ttl_s)
                        ).rowcount
                    if not mine:
                        exists = c.execute(
                            sa.select(leases.c.name).where(leases.c.name == name)
                        ).first()
                        if exists is not None:
                            return None  # someone else holds it
                        c.execute(
                            leases.insert().values(
                                name=name,
                                holder=holder,
                                token=1,
                                expires_at=now + ttl_s,
                            )
                        )
                    return self._row(c, name, live_only=False)
            except IntegrityError:
                continue  # another replica inserted the row first: look again
        return None

    def renew(self, lease: Lease, ttl_s: float) -> Lease | None:
        """Extend while still held under ``lease.token`` and unexpired."""
        _check(lease.name, lease.holder, ttl_s)
        with self.engine.begin() as c:
            now = _db_now(c)
            n = c.execute(
                leases.update()
                .where(
                    leases.c.name == lease.name,
                    leases.c.holder == lease.holder,
                    leases.c.token == lease.token,
                    leases.c.expires_at > now,
                )
                .values(expires_at=now + ttl_s)
            ).rowcount
            return self._row(c, lease.name, live_only=False) if n else None

    def release(self, lease: Lease) -> bool:
        """Free the lease now; the token stays, so the next holder's is larger."""
        with self.engine.begin() as c:
            n = c.execute(
                leases.update()
                .where(
                    leases.c.name == lease.name,
                    leases.c.holder == lease.holder,
                    leases.c.token == lease.token,
                )
                .values(holder=None, expires_at=_db_now(c))
            ).rowcount
            return bool(n)

    def current(self, name: str) -> Lease | None:
        """The live lease of ``name``, if any."""
        with self.engine.connect() as c:
            return self._row(c, name)

    def fenced(self, lease: Lease, write: Callable[[], T]) -> T:
        """Check the token, then run ``write`` in its own transactions. The check and the
        write are not atomic here (``write`` may use other connections; on SQLite holding the
        check's lock would block them): use :meth:`fenced_tx` to write in the same transaction."""
        with self.engine.connect() as c:
            live = self._row(c, lease.name)
        if live is None or (live.holder, live.token) != (lease.holder, lease.token):
            raise LeaseLost(lease)
        return write()

    def fenced_tx(self, lease: Lease, write: Callable[[Connection], T]) -> T:
        """Run ``write(conn)`` in one transaction with the fencing check.

        The lease row is locked first (PostgreSQL: ``SELECT ... FOR UPDATE``; SQLite: a write
        to the row takes the database's write lock), so no takeover can slip in between the
        check and the write: a stale holder's write raises :class:`LeaseLost` and changes nothing.
        """
        with self.engine.begin() as c:
            now = _db_now(c)
            if c.dialect.name == "postgresql":
                row = c.execute(
                    sa.select(leases.c.holder, leases.c.token, leases.c.expires_at > now)
                    .where(leases.c.name == lease.name)
                    .with_for_update()
                ).first()
            else:
                c.execute(
                    leases.update().where(leases.c.name == lease.name).values(token=leases.c.token)
                )
                row = c.execute(
                    sa.select(leases.c.holder, leases.c.token, leases.c.expires_at > now).where(
                        leases.c.name == lease.name
                    )
                ).first()
            if row is None or row[0] != lease.holder or row[1] != lease.token or not row[2]:
                raise LeaseLost(lease)
            return write(c)
