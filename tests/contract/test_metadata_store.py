"""Contract tests every MetadataStore implementation must pass (one subclass per backend)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mobiletrain.core.annotations import Box
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.ports import MetadataStore
from mobiletrain.core.types import (
    Artifact,
    EventKind,
    Hyperparameters,
    InputSpec,
    Job,
    JobState,
    ModelFormat,
    ModelVersion,
    Project,
    Sample,
    TaskType,
)
from mobiletrain.store.sql import SqlMetadataStore


def _now() -> datetime:
    return datetime.now(UTC)


def make_project(name: str = "cats", labels: list[str] | None = None) -> Project:
    return Project(
        id=str(uuid.uuid4()),
        name=name,
        task=TaskType.IMAGE_CLASSIFICATION,
        labels=labels or [],
        labels_fixed=bool(labels),
        input_spec=InputSpec(32, 32),
        created_at=_now(),
    )


def make_sample(project: Project, client_id: str, label: str = "a", sha: str = "") -> Sample:
    return Sample(
        id=str(uuid.uuid4()),
        project_id=project.id,
        client_id=client_id,
        label=label,
        sha256=sha or uuid.uuid4().hex * 2,
        size=10,
        media_type="image/png",
        width=8,
        height=8,
        created_at=_now(),
    )


def make_job(project: Project) -> Job:
    return Job(
        id=str(uuid.uuid4()),
        project_id=project.id,
        state=JobState.QUEUED,
        hyperparameters=Hyperparameters(epochs=3),
        created_at=_now(),
    )


class MetadataStoreContract:
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[MetadataStore]:
        raise NotImplementedError

    def test_project_roundtrip_and_unique_name(self, store: MetadataStore) -> None:
        p = store.create_project(make_project("dogs", ["a", "b"]))
        got = store.get_project(p.id)
        assert got is not None and got.name == "dogs" and got.labels == ["a", "b"]
        assert got.labels_fixed and got.input_spec == InputSpec(32, 32)
        assert store.get_project_by_name("dogs") is not None
        with pytest.raises(MobiletrainError) as err:
            store.create_project(make_project("dogs"))
        assert err.value.code is ErrorCode.PROJECT_EXISTS

    def test_unicode_names_and_labels(self, store: MetadataStore) -> None:
        p = store.create_project(make_project("Katzen 🐱", ["chat noir", "猫"]))
        assert store.get_project_by_name("Katzen 🐱").labels == ["chat noir", "猫"]  # type: ignore[union-attr]
        assert store.add_labels(p.id, ["猫", "нет"]) == ["chat noir", "猫", "нет"]

    def test_list_projects_paging(self, store: MetadataStore) -> None:
        for i in range(5):
            store.create_project(make_project(f"p{i}"))
        first = store.list_projects(3, 0)
        rest = store.list_projects(3, 3)
        assert [p.name for p in first + rest] == [f"p{i}" for i in range(5)]

    def test_add_samples_is_idempotent(self, store: MetadataStore) -> None:
        p = store.create_project(make_project())
        s1 = make_sample(p, "c1", "a", "1" * 64)
        s2 = make_sample(p, "c2", "b", "2" * 64)
        assert store.add_samples([s1, s2]) == [None, None]
        # same client id again, and same bytes+label under a new client id
        again = store.add_samples(
            [make_sample(p, "c1", "a", "1" * 64), make_sample(p, "c9", "b", "2" * 64)]
        )
        assert [t.id if t else None for t in again] == [s1.id, s2.id]
        # repeated inside one batch
        s3 = make_sample(p, "c3", "a", "3" * 64)
        twins = store.add_samples([s3, make_sample(p, "c3", "a", "3" * 64)])
        assert twins[0] is None and twins[1] is not None
        assert store.class_counts(p.id) == {"a": 2, "b": 1}
        assert store.dataset_size(p.id) == (3, 30)  # counters follow inserts, not duplicates
        # same bytes under another label is a different sample
        assert store.add_samples([make_sample(p, "c4", "b", "1" * 64)]) == [None]

    def test_concurrent_uploads_never_double(self, store: MetadataStore) -> None:
        p = store.create_project(make_project())
        batch = [(f"c{i}", f"{i:064x}") for i in range(40)]
        errors: list[BaseException] = []

        def upload() -> None:
            try:
                store.add_samples([make_sample(p, c, "a", sha) for c, sha in batch])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=upload) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert store.class_counts(p.id) == {"a": 40}
        assert store.dataset_size(p.id) == (40, 400)

    def test_list_samples_keyset_paging_and_delete(self, store: MetadataStore) -> None:
        p = store.create_project(make_project())
        samples = [make_sample(p, f"c{i}", "ab"[i % 2]) for i in range(7)]
        store.add_samples(samples)
        seen: list[str] = []
        cursor = 0
        while True:
            page, cursor = store.list_samples(p.id, None, 3, cursor)
            seen += [s.client_id for s in page]
            if not cursor:
                break
        assert seen == [f"c{i}" for i in range(7)]
        only_b, _ = store.list_samples(p.id, "b", 10, 0)
        assert [s.client_id for s in only_b] == ["c1", "c3", "c5"]
        assert store.delete_sample(p.id, samples[0].id)
        assert not store.delete_sample(p.id, samples[0].id)
        assert store.dataset_size(p.id) == (6, 60)
        assert store.get_sample(p.id, samples[0].id) is None
        assert len(store.all_samples(p.id)) == 6

    def test_relabel_sample(self, store: MetadataStore) -> None:
        p = store.create_project(make_project())
        other = store.create_project(make_project("other"))
        s1 = make_sample(p, "c1", "a", "1" * 64)
        s2 = make_sample(p, "c2", "b", "1" * 64)  # the same bytes under another label
        store.add_samples([s1, s2])
        moved = store.relabel_sample(p.id, s1.id, "c")
        assert moved is not None and moved.id == s1.id and moved.label == "c"
        assert moved.sha256 == s1.sha256 and moved.client_id == "c1"
        assert store.get_sample(p.id, s1.id).label == "c"  # type: ignore[union-attr]
        assert store.class_counts(p.id) == {"b": 1, "c": 1}
        with pytest.raises(MobiletrainError) as err:
            store.relabel_sample(p.id, s1.id, "b")  # (project, sha256, "b") is taken by s2
        assert err.value.code is ErrorCode.ALREADY_EXISTS
        assert store.get_sample(p.id, s1.id).label == "c"  # type: ignore[union-attr]
        same = store.relabel_sample(p.id, s2.id, "b")
        assert same is not None and same.label == "b"
        assert store.relabel_sample(p.id, "missing", "a") is None
        assert store.relabel_sample(other.id, s1.id, "a") is None
        # The old label is free again for the same bytes.
        assert store.add_samples([make_sample(p, "c3", "a", "1" * 64)]) == [None]

    def test_detection_boxes_roundtrip_update_and_counts(self, store: MetadataStore) -> None:
        p = store.create_project(make_project("boxes"))
        other = store.create_project(make_project("elsewhere"))
        cat = Box("cat", 0.1, 0.2, 0.5, 0.6)
        dog = Box("dog", 0.0, 0.0, 1.0, 1.0)
        s1 = make_sample(p, "d1", "cat", "1" * 64)
        s1.boxes = [cat, dog, cat]
        s2 = make_sample(p, "d2", "_no_boxes_", "2" * 64)
        s2.boxes = []
        s3 = make_sample(p, "c3", "plain", "3" * 64)  # not a detection sample
        store.add_samples([s1, s2, s3])
        got = store.get_sample(p.id, s1.id)
        assert got is not None and got.boxes == [cat, dog, cat]
        assert store.get_sample(p.id, s2.id).boxes == []  # type: ignore[union-attr]
        assert store.get_sample(p.id, s3.id).boxes is None  # type: ignore[union-attr]
        assert store.box_counts(p.id) == ({"cat": 2, "dog": 1}, 1)
        listed, _ = store.list_samples(p.id, None, 10, 0)
        assert [s.boxes for s in listed] == [[cat, dog, cat], [], None]
        # Replacing boxes moves the derived label along.
        moved = store.set_sample_boxes(p.id, s2.id, [dog], "dog")
        assert moved is not None and moved.boxes == [dog] and moved.label == "dog"
        assert store.box_counts(p.id) == ({"cat": 2, "dog": 2}, 0)
        assert store.set_sample_boxes(p.id, s1.id, [], "_no_boxes_") is not None
        assert store.get_sample(p.id, s1.id).label == "_no_boxes_"  # type: ignore[union-attr]
        assert store.box_counts(p.id) == ({"dog": 1}, 1)
        assert store.set_sample_boxes(other.id, s1.id, [dog], "dog") is None
        assert store.set_sample_boxes(p.id, "missing", [dog], "dog") is None
        # The same bytes twice under one label is refused, as relabelling does.
        twin = make_sample(p, "d4", "dog", "1" * 64)
        twin.boxes = [dog]
        store.add_samples([twin])
        with pytest.raises(MobiletrainError) as err:
            store.set_sample_boxes(p.id, s1.id, [dog], "dog")
        assert err.value.code is ErrorCode.ALREADY_EXISTS
        assert store.get_sample(p.id, s1.id).boxes == []  # type: ignore[union-attr]

    def test_damaged_mark_is_set_cleared_and_survives_reads(self, store: MetadataStore) -> None:
        p = store.create_project(make_project("lost"))
        q = store.create_project(make_project("other"))
        a, b, c = (make_sample(p, f"c{i}", label="x" if i else "y") for i in range(3))
        d = make_sample(q, "d")
        store.add_samples([a, b, c])
        store.add_samples([d])
        assert not store.get_sample(p.id, a.id).damaged  # type: ignore[union-attr]
        assert store.damaged_samples() == []

        assert store.set_samples_damaged([a.id, c.id, d.id], True) == 3
        assert store.set_samples_damaged([a.id], True) == 0  # already marked: no change
        assert [s.id for s in store.damaged_samples(p.id)] == [a.id, c.id]
        assert [s.id for s in store.damaged_samples()] == [a.id, c.id, d.id]
        # Every read path carries the mark.
        assert store.get_sample(p.id, a.id).damaged  # type: ignore[union-attr]
        assert store.get_sample_by_client_id(p.id, "c2").damaged  # type: ignore[union-attr]
        assert [s.damaged for s in store.all_samples(p.id)] == [True, False, True]
        listed, _ = store.list_samples(p.id, None, 10, 0)
        assert [s.damaged for s in listed] == [True, False, True]

        # A re-upload of the same bytes finds the marked twin (the service then clears it).
        twin = store.add_samples([make_sample(p, "again", label=a.label, sha=a.sha256)])[0]
        assert twin is not None and twin.id == a.id and twin.damaged

        assert store.set_samples_damaged([a.id, b.id], False) == 1
        assert [s.id for s in store.damaged_samples()] == [c.id, d.id]
        assert store.set_samples_damaged([], True) == 0

    def test_scan_samples_pages_through_every_project(self, store: MetadataStore) -> None:
        projects = [store.create_project(make_project(f"scan{i}")) for i in range(3)]
        ids = []
        for i in range(7):
            sample = make_sample(projects[i % 3], f"s{i}")
            store.add_samples([sample])
            ids.append(sample.id)
        seen: list[str] = []
        cursor, pages = 0, 0
        while True:
            page, cursor = store.scan_samples(cursor, 3)
            seen += [s.id for s in page]
            pages += 1
            if cursor == 0:
                break
        assert seen == ids and pages == 3
        assert store.scan_samples(0, 100) == (store.scan_samples(0, 100)[0], 0)

    def test_job_claim_is_exclusive(self, store: MetadataStore) -> None:
        p = store.create_project(make_project())
        job = store.create_job(make_job(p))
        claimed = store.claim_job()
        assert claimed is not None and claimed.id == job.id
        assert claimed.state is JobState.RUNNING and claimed.attempts == 1
        assert store.claim_job() is None
        done = store.finish_job(job.id, JobState.SUCCEEDED, model_version=1)
        assert done.state is JobState.SUCCEEDED and done.finished_at is not None
        assert done.model_version == 1
        assert done.hyperparameters.epochs == 3

    def test_leases_expire_unless_renewed(self, store: MetadataStore) -> None:
        p = store.create_project(make_project())
        job = store.create_job(make_job(p))
        assert store.claim_job(job.id, lease_seconds=0.2) is not None
        assert store.expired_jobs(_now()) == []
        later = _now() + timedelta(seconds=1)
        assert [j.id for j in store.expired_jobs(later)] == [job.id]
        assert store.renew_lease(job.id, 60)
        assert store.expired_jobs(later) == []
        store.finish_job(job.id, JobState.SUCCEEDED)
        assert not store.renew_lease(job.id, 60)
        assert store.expired_jobs(_now() + timedelta(days=1)) == []

    def test_cancel_queued_job(self, store: MetadataStore) -> None:
        p = store.create_project(make_project())
        job = store.create_job(make_job(p))
        cancelled = store.request_cancel(job.id)
        assert cancelled.state is JobState.CANCELLED and cancelled.cancel_requested
        assert store.claim_job() is None

    def test_events_sequence_and_watermark(self, store: MetadataStore) -> None:
        p = store.create_project(make_project())
        job = store.create_job(make_job(p))
        mark = store.event_watermark()
        seqs = [store.append_event(job.id, EventKind.LOG, {"i": i}).seq for i in range(5)]
        assert seqs == [1, 2, 3, 4, 5]
        assert store.event_watermark() > mark
        later = store.list_events(job.id, 3, 100)
        assert [e.seq for e in later] == [4, 5] and later[0].data == {"i": 3}

    def test_concurrent_event_appends_get_distinct_seqs(self, store: MetadataStore) -> None:
        p = store.create_project(make_project())
        job = store.create_job(make_job(p))

        def append() -> None:
            for _ in range(10):
                store.append_event(job.id, EventKind.LOG, {})

        threads = [threading.Thread(target=append) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [e.seq for e in store.list_events(job.id, 0, 100)] == list(range(1, 31))

    def test_model_versions_number_up(self, store: MetadataStore) -> None:
        p = store.create_project(make_project())
        art = {ModelFormat.FLOAT32: Artifact(ModelFormat.FLOAT32, "f" * 64, 123)}
        for _ in range(2):
            store.create_model_version(
                ModelVersion(p.id, 0, "job", _now(), {"acc": 1.0}, {"labels": ["a"]}, art)
            )
        versions = store.list_model_versions(p.id)
        assert [v.version for v in versions] == [2, 1]
        v1 = store.get_model_version(p.id, 1)
        assert v1 is not None and v1.manifest["version"] == 1
        assert v1.artifacts[ModelFormat.FLOAT32].size == 123
        store.set_promoted_version(p.id, 1)
        assert store.get_project(p.id).promoted_version == 1  # type: ignore[union-attr]

    def test_release_gate_records(self, store: MetadataStore) -> None:
        from mobiletrain.core.release import (
            ReleaseAction,
            ReleaseDecision,
            ReleasePolicy,
            ReleaseRecord,
        )

        p = store.create_project(make_project("gate"))
        samples = [make_sample(p, f"c{i}") for i in range(3)]
        store.add_samples(samples)
        store.assign_eval_set(p.id, {samples[0].id: True, samples[1].id: False})
        store.assign_eval_set(p.id, {samples[0].id: False})  # assigned samples never move
        flags = {s.id: s.in_eval_set for s in store.all_samples(p.id)}
        assert flags == {samples[0].id: True, samples[1].id: False, samples[2].id: None}

        store.set_release_policy(p.id, ReleasePolicy(min_accuracy=0.5))
        assert store.get_project(p.id).release_policy == ReleasePolicy(min_accuracy=0.5)  # type: ignore[union-attr]
        art = {ModelFormat.FLOAT32: Artifact(ModelFormat.FLOAT32, "f" * 64, 1)}
        for _ in range(2):
            store.create_model_version(
                ModelVersion(p.id, 0, "job", _now(), {}, {}, art, status="candidate")
            )
        with pytest.raises(MobiletrainError) as err:  # an explicit number that is taken
            store.create_model_version(ModelVersion(p.id, 2, "job", _now(), {}, {}, art))
        assert err.value.code is ErrorCode.ALREADY_EXISTS
        assert store.next_model_version(p.id) == 3

        def record(version: int) -> ReleaseRecord:
            return ReleaseRecord(
                p.id, version, None, ReleaseAction.MANUAL_PROMOTE, "why", "me", _now()
            )

        first = store.change_current_version(record(1), pinned=True, expected_current=None)
        assert first is not None and first.previous_version is None and first.id > 0
        # Compare-and-set: the current version is 1 now, not None.
        assert store.change_current_version(record(2), False, expected_current=None) is None
        second = store.change_current_version(record(2), pinned=False)
        assert second is not None and second.previous_version == 1
        project = store.get_project(p.id)
        assert project is not None and project.promoted_version == 2
        assert not project.release_pinned
        statuses = {v.version: v.status for v in store.list_model_versions(p.id)}
        assert statuses == {1: "released", 2: "released"}
        history = store.list_releases(p.id)
        assert [(r.version, r.previous_version) for r in history] == [(2, 1), (1, None)]
        lost = ReleaseDecision(promoted=False, reason="lost the race", policy=ReleasePolicy())
        store.set_model_decision(p.id, 2, lost)
        stored = store.get_model_version(p.id, 2)
        assert stored is not None and stored.decision == lost


class TestSqliteMetadataStore(MetadataStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[MetadataStore]:
        s = SqlMetadataStore(f"sqlite:///{tmp_path}/meta.db")
        yield s
        s.close()

    def test_sqlite_uses_wal(self, store: MetadataStore) -> None:
        assert isinstance(store, SqlMetadataStore)
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"

    def test_migrations_match_the_schema(self, store: MetadataStore) -> None:
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        from mobiletrain.store.schema import metadata

        assert isinstance(store, SqlMetadataStore)
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []


POSTGRES_URL = os.environ.get("MOBILETRAIN_TEST_POSTGRES_URL", "")


@pytest.mark.postgres
class TestPostgresMetadataStore(MetadataStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[MetadataStore]:
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
        s = SqlMetadataStore(f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}")
        yield s
        s.close()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
