"""Disk full recognised in its real shapes, and the free-space reserve (core.storage)."""

from __future__ import annotations

import errno
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.storage import (
    MIB,
    SpaceGuard,
    is_storage_full,
    reserve_bytes,
    storage_full_error,
)
from mobiletrain.core.types import InputSpec, Project, Sample, TaskType
from mobiletrain.store.sql import SqlMetadataStore


def test_a_write_to_a_full_device_is_storage_full() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (Linux)")
    with pytest.raises(OSError) as caught, open("/dev/full", "wb", buffering=0) as fh:
        fh.write(b"x" * 4096)
    assert caught.value.errno == errno.ENOSPC
    assert is_storage_full(caught.value)
    err = storage_full_error(caught.value)
    assert err is not None and err.code is ErrorCode.STORAGE_FULL
    assert err.code.number == 74 and err.code.http_status == 507
    assert err.code.grpc_status == "RESOURCE_EXHAUSTED"
    assert "/dev" not in err.message  # no paths to clients


def test_wrapped_causes_are_followed_and_other_errors_are_not_storage_full() -> None:
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as inner:
            raise RuntimeError("could not write the checkpoint") from inner
    except RuntimeError as outer:
        assert is_storage_full(outer)
    assert not is_storage_full(OSError(errno.EIO, "Input/output error"))
    assert not is_storage_full(KeyError("abc"))
    assert storage_full_error(ValueError("x")) is None
    other = MobiletrainError(ErrorCode.QUOTA_EXCEEDED)
    assert storage_full_error(other) is None


def test_sqlite_database_or_disk_is_full_is_storage_full(tmp_path: Path) -> None:
    """A real SQLITE_FULL: the database may not grow past a few pages."""
    store = SqlMetadataStore(f"sqlite:///{tmp_path}/meta.db")
    store.write_engine.dispose()

    @event.listens_for(store.write_engine, "connect")
    def _cap(dbapi_conn: object, _record: object) -> None:
        cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
        pages = cur.execute("PRAGMA page_count").fetchone()[0]
        cur.execute(f"PRAGMA max_page_count = {pages + 2}")
        cur.close()

    project = Project(
        id=str(uuid.uuid4()),
        name="full",
        task=TaskType.IMAGE_CLASSIFICATION,
        labels=[],
        labels_fixed=False,
        input_spec=InputSpec(8, 8),
        created_at=datetime.now(UTC),
    )
    store.create_project(project)
    with pytest.raises(MobiletrainError) as caught:
        for i in range(10_000):
            store.add_samples(
                [
                    Sample(
                        id=str(uuid.uuid4()),
                        project_id=project.id,
                        client_id=f"c{i}-" + "x" * 100,
                        label="a",
                        sha256=uuid.uuid4().hex * 2,
                        size=1,
                        media_type="image/png",
                        width=8,
                        height=8,
                        created_at=datetime.now(UTC),
                    )
                ]
            )
    # The store answers STORAGE_FULL itself; SQLAlchemy's error (SQLite's) is its cause.
    assert caught.value.code is ErrorCode.STORAGE_FULL
    assert "database or disk is full" in str(caught.value.__cause__)
    assert is_storage_full(caught.value.__cause__)  # type: ignore[arg-type]
    store.close()


def test_postgres_disk_full_sqlstate_is_storage_full() -> None:
    errors = pytest.importorskip("psycopg.errors")
    assert is_storage_full(errors.DiskFull("could not extend file"))


def test_the_reserve_is_the_smaller_of_the_two_settings() -> None:
    total = 100 * 1024 * MIB  # 100 GiB: 5% = 5 GiB, so 256 MiB wins
    assert reserve_bytes(total, 256, 5) == 256 * MIB
    assert reserve_bytes(1024 * MIB, 256, 5) == int(1024 * MIB * 0.05)  # 1 GiB: 5% wins
    assert reserve_bytes(total, 0, 5) == 0 and reserve_bytes(total, 256, 0) == 0


def test_space_guard_refuses_below_the_reserve_and_caches_its_reading(tmp_path: Path) -> None:
    now = [0.0]
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    # A reserve larger than the free space of the real file system.
    guard = SpaceGuard([tmp_path], free / MIB + 1024, 100, ttl=1.0, clock=lambda: now[0])
    with pytest.raises(MobiletrainError) as refused:
        guard.check()
    assert refused.value.code is ErrorCode.STORAGE_FULL
    assert "storage below reserve: " in refused.value.message
    assert (guard.problem() or "").startswith("storage below reserve: ")

    guard.reserve_mib = 0  # space "came back": seen only after the cached reading expires
    assert guard.problem() is not None
    now[0] = 1.5
    assert guard.problem() is None
    guard.check()

    missing = SpaceGuard([tmp_path / "not-there"], 256, 5)
    assert missing.problem() is None  # nothing to measure: never refuses
