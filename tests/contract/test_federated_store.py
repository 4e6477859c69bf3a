"""Contract tests of the federated store (SQLite here, PostgreSQL where configured)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mobiletrain.core.types import (
    EventKind,
    Hyperparameters,
    InputSpec,
    Job,
    JobState,
    Project,
    TaskType,
)
from mobiletrain.federated.config import FederatedConfig, StrategyName
from mobiletrain.federated.ports import FederatedStore
from mobiletrain.federated.records import (
    DeviceRecord,
    FederatedSession,
    RoundRecord,
    SessionState,
    UpdateRecord,
    UpdateStatus,
)
from mobiletrain.federated.rounds import RoundPhase
from mobiletrain.store.federated import SqlFederatedStore
from mobiletrain.store.sql import SqlMetadataStore

POSTGRES_URL = os.environ.get("MOBILETRAIN_TEST_POSTGRES_URL", "")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _project(store: SqlMetadataStore) -> Project:
    return store.create_project(
        Project(
            id=str(uuid.uuid4()),
            name=f"p-{uuid.uuid4().hex[:6]}",
            task=TaskType.IMAGE_CLASSIFICATION,
            labels=["a", "b"],
            labels_fixed=True,
            input_spec=InputSpec(8, 8),
            created_at=_now(),
        )
    )


def _session(project: Project, state: SessionState = SessionState.RUNNING) -> FederatedSession:
    return FederatedSession(
        id=str(uuid.uuid4()),
        project_id=project.id,
        job_id=str(uuid.uuid4()),
        state=state,
        config=FederatedConfig(rounds=3, strategy=StrategyName.MEDIAN, hidden=[8]),
        labels=["a", "b"],
        created_at=_now(),
    )


class FederatedStoreContract:
    @pytest.fixture
    def stores(self, tmp_path: Path) -> Iterator[tuple[SqlMetadataStore, FederatedStore]]:
        raise NotImplementedError

    def test_session_round_trip_and_listing(
        self, stores: tuple[SqlMetadataStore, FederatedStore]
    ) -> None:
        meta, store = stores
        project = _project(meta)
        first = _session(project, SessionState.FINISHED)
        second = _session(project)
        store.create_session(first)
        store.create_session(second)
        got = store.get_session(second.id)
        assert got is not None and got.config == second.config and got.labels == ["a", "b"]
        assert got.config.strategy is StrategyName.MEDIAN
        assert [s.id for s in store.list_sessions(project.id)] == [second.id, first.id]
        active = store.list_sessions(states=[SessionState.PREPARING, SessionState.RUNNING])
        assert [s.id for s in active] == [second.id]
        second.current_round, second.model_version = 2, 5
        second.files = {"train-step": {"sha256": "ab" * 32, "size": 10}}
        second.bundle = {"head": {"feature_dim": 4}}
        second.metrics = {"accuracy": 0.5}
        second.state, second.finished_at = SessionState.FINISHED, _now()
        store.save_session(second)
        again = store.get_session(second.id)
        assert again is not None
        assert (again.current_round, again.model_version, again.state) == (
            2,
            5,
            SessionState.FINISHED,
        )
        assert again.files == second.files and again.bundle == second.bundle
        assert again.finished_at == second.finished_at
        assert store.get_session("nope") is None

    def test_devices_rounds_and_updates(
        self, stores: tuple[SqlMetadataStore, FederatedStore]
    ) -> None:
        meta, store = stores
        session = _session(_project(meta))
        store.create_session(session)
        for name in ("d1", "d2"):
            store.add_device(DeviceRecord(session.id, name, _now(), {"platform": "android"}))
        assert [d.device_id for d in store.list_devices(session.id)] == ["d1", "d2"]
        assert store.list_devices(session.id)[0].info == {"platform": "android"}
        opened = _now()
        record = RoundRecord(
            session.id, 1, RoundPhase.OPEN, ["d1", "d2"], opened, opened + timedelta(seconds=9)
        )
        store.save_round(record)
        record.phase, record.closed_at = RoundPhase.AGGREGATED, _now()
        record.result = {"accepted": {"d1": 3}, "noise_std": 0.1}
        store.save_round(record)
        store.save_round(RoundRecord(session.id, 2, RoundPhase.OPEN, ["d1"], opened, opened))
        rounds = store.list_rounds(session.id)
        assert [(r.number, r.phase) for r in rounds] == [
            (1, RoundPhase.AGGREGATED),
            (2, RoundPhase.OPEN),
        ]
        assert rounds[0].result["accepted"] == {"d1": 3} and rounds[0].deadline_at > opened
        store.add_update(
            UpdateRecord(
                session.id, 1, "d1", UpdateStatus.ACCEPTED, "", "", 3, {"loss": 0.2}, _now(), "k"
            )
        )
        store.add_update(
            UpdateRecord(
                session.id, 1, "d2", UpdateStatus.REJECTED, "not-finite", "NaN", 3, {}, _now()
            )
        )
        updates = store.list_updates(session.id, 1)
        assert [(u.device_id, u.status, u.payload) for u in updates] == [
            ("d1", UpdateStatus.ACCEPTED, "k"),
            ("d2", UpdateStatus.REJECTED, ""),
        ]
        assert updates[0].metrics == {"loss": 0.2} and store.list_updates(session.id, 2) == []

    def test_a_round_number_opens_once(
        self, stores: tuple[SqlMetadataStore, FederatedStore]
    ) -> None:
        """open_round refuses a second open of a number (the fleet test saw round 1 opened
        twice: a stale copy of the session had written its current round back to 0), a
        session save never moves the current round back, and the open's log line is stored
        with it."""
        meta, store = stores
        project = _project(meta)
        session = _session(project)
        meta.create_job(
            Job(session.job_id, project.id, JobState.RUNNING, Hyperparameters(), _now())
        )
        store.create_session(session)
        stale = store.get_session(session.id)  # a copy read before round 1 opened
        assert stale is not None and stale.current_round == 0
        opened = _now()

        def record(number: int) -> RoundRecord:
            return RoundRecord(
                session.id, number, RoundPhase.OPEN, ["d1"], opened, opened + timedelta(seconds=9)
            )

        assert store.open_round(record(1), {"message": "round 1/3: selected 1"})
        assert not store.open_round(record(1), {"message": "round 1/3: selected 1 again"})
        assert not store.open_round(record(3))  # not the next one
        # The stale copy is saved (as an old preparing state did): round 1 stays current ...
        assert store.save_session_if_active(stale)
        got = store.get_session(session.id)
        assert got is not None and got.current_round == 1
        # ... and even with the row's current round forced back, round 1 does not open again.
        store.save_session(stale)
        assert not store.open_round(record(1), {"message": "round 1/3: selected 1 again"})
        rounds = store.list_rounds(session.id)
        assert [(r.number, r.opened_at) for r in rounds] == [(1, opened)]
        logs = [
            e.data["message"]
            for e in meta.list_events(session.job_id, 0, 100)
            if e.kind is EventKind.LOG
        ]
        assert logs == ["round 1/3: selected 1"]
        # Moving forward still works.
        store.save_session(got)
        assert store.open_round(record(2), {"message": "round 2/3: selected 1"})
        got = store.get_session(session.id)
        assert got is not None and got.current_round == 2


class TestSqliteFederatedStore(FederatedStoreContract):
    @pytest.fixture
    def stores(self, tmp_path: Path) -> Iterator[tuple[SqlMetadataStore, FederatedStore]]:
        meta = SqlMetadataStore(f"sqlite:///{tmp_path}/meta.db")
        yield meta, SqlFederatedStore(meta)
        meta.close()


@pytest.mark.postgres
class TestPostgresFederatedStore(FederatedStoreContract):
    @pytest.fixture
    def stores(self) -> Iterator[tuple[SqlMetadataStore, FederatedStore]]:
        if not POSTGRES_URL:
            pytest.skip("PostgreSQL tests need MOBILETRAIN_TEST_POSTGRES_URL (set by .ci/run)")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            pytest.skip("PostgreSQL tests need the psycopg package")
        import sqlalchemy as sa

        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in POSTGRES_URL else "?"
        meta = SqlMetadataStore(f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}")
        yield meta, SqlFederatedStore(meta)
        meta.close()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
