"""Deletion means deletion: compaction drops unreferenced records from packs, online and kill-safe.

Real parts only: a real metadata store (SQLite, and PostgreSQL when configured), real packs,
processes really killed with SIGKILL in the middle of a run, pack files read byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mobiletrain.core.types import (
    Artifact,
    InputSpec,
    ModelFormat,
    ModelVersion,
    Project,
    Sample,
    TaskType,
    UploadSession,
)
from mobiletrain.store.blobs import LocalPackBlobStore, scan_pack
from mobiletrain.store.compaction import compact, compact_packs
from mobiletrain.store.sql import SqlMetadataStore

POSTGRES_URL = os.environ.get("MOBILETRAIN_TEST_POSTGRES_URL", "")


def _now() -> datetime:
    return datetime.now(UTC)


def _project(name: str) -> Project:
    return Project(
        id=str(uuid.uuid4()),
        name=name,
        task=TaskType.IMAGE_CLASSIFICATION,
        labels=["a", "b"],
        labels_fixed=False,
        input_spec=InputSpec(32, 32),
        created_at=_now(),
    )


def _sample(project: Project, sha: str, size: int, client_id: str) -> Sample:
    return Sample(
        id=str(uuid.uuid4()),
        project_id=project.id,
        client_id=client_id,
        label="a",
        sha256=sha,
        size=size,
        media_type="image/png",
        width=8,
        height=8,
        created_at=_now(),
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def meta(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlMetadataStore]:
    if request.param == "sqlite":
        store = SqlMetadataStore(f"sqlite:///{tmp_path / 'meta.db'}")
        yield store
        store.close()
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need MOBILETRAIN_TEST_POSTGRES_URL (set by .ci/run)")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    store = SqlMetadataStore(f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}")
    yield store
    store.close()
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def _files_containing(root: Path, data: bytes) -> list[str]:
    """Every file under ``root`` whose raw bytes contain ``data``."""
    return [p.name for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


def _blobs(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(2_000, 9_000)) for _ in range(count)]


def test_referenced_blobs_lists_every_kind_of_reference(meta: SqlMetadataStore) -> None:
    p = meta.create_project(_project("refs"))
    meta.add_samples([_sample(p, "1" * 64, 10, "c1"), _sample(p, "2" * 64, 10, "c2")])
    meta.create_upload(
        UploadSession(
            id=str(uuid.uuid4()),
            project_id=p.id,
            client_id="big",
            label="a",
            size=100,
            sha256="3" * 64,
            offset=0,
            chunks=[],
            created_at=_now(),
            expires_at=_now() + timedelta(hours=1),
        )
    )
    session = meta.find_upload(p.id, "big")
    assert session is not None
    assert meta.advance_upload(session.id, 0, "4" * 64, 50)
    meta.create_model_version(
        ModelVersion(
            project_id=p.id,
            version=0,
            job_id=str(uuid.uuid4()),
            created_at=_now(),
            metrics={},
            manifest={"files": {"tflite": {"sha256": "5" * 64}}},
            artifacts={ModelFormat.KERAS: Artifact(ModelFormat.KERAS, "6" * 64, 10)},
        )
    )
    assert meta.referenced_blobs() >= {c * 64 for c in "123456"}
    assert "7" * 64 not in meta.referenced_blobs()


def test_deleted_samples_are_gone_from_every_pack_and_live_ones_intact(
    meta: SqlMetadataStore, tmp_path: Path
) -> None:
    root = tmp_path / "blobs"
    blobs = LocalPackBlobStore(root, pack_limit=60_000)  # several packs
    reader = LocalPackBlobStore(root)  # another process's view, indexed before compaction
    p, q = meta.create_project(_project("p")), meta.create_project(_project("q"))
    data = _blobs(40, seed=1)
    samples = [_sample(p, blobs.put(d), len(d), f"c{i}") for i, d in enumerate(data)]
    shared = _sample(q, samples[0].sha256, len(data[0]), "same-bytes")  # same bytes, 2 projects
    model_bytes = os.urandom(5000)
    meta.create_model_version(
        ModelVersion(
            project_id=p.id,
            version=0,
            job_id=str(uuid.uuid4()),
            created_at=_now(),
            metrics={},
            manifest={},
            artifacts={
                ModelFormat.KERAS: Artifact(ModelFormat.KERAS, blobs.put(model_bytes), 5000)
            },
        )
    )
    blobs.sync()
    meta.add_samples(samples)
    assert meta.add_samples([shared]) == [None]
    reader.keys()
    deleted = list(range(0, 40, 3))  # includes sample 0, whose bytes project q still uses
    for i in deleted:
        assert meta.delete_sample(p.id, samples[i].id)
    before = sum(f.stat().st_size for f in (root / "packs").glob("*.pack"))

    report = compact_packs(blobs, meta.referenced_blobs, grace_s=0)

    gone = [i for i in deleted if i != 0]
    assert report.records_dropped == len(gone)
    assert report.bytes_freed == before - sum(
        f.stat().st_size for f in (root / "packs").glob("*.pack")
    )
    assert report.bytes_freed >= sum(len(data[i]) for i in gone)
    for i in gone:
        assert _files_containing(root, data[i]) == [], f"deleted sample {i} still on disk"
    live = {
        s.sha256: d for i, (s, d) in enumerate(zip(samples, data, strict=True)) if i not in gone
    }
    live[blobs.put(model_bytes)] = model_bytes
    for store in (blobs, reader, LocalPackBlobStore(root)):
        for key, d in live.items():
            assert store.get(key) == d
        for i in gone:
            with pytest.raises(KeyError):
                store.get(samples[i].sha256)
    # Nothing left to do: a second run rewrites nothing.
    assert compact_packs(blobs, meta.referenced_blobs, grace_s=0).packs_compacted == 0


def test_a_put_during_the_grace_period_writes_a_fresh_copy(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    blobs = LocalPackBlobStore(root)
    other = LocalPackBlobStore(root)  # an API replica or worker with its own index
    dead, kept = os.urandom(3000), os.urandom(3000)
    dead_key, kept_key = blobs.put(dead), blobs.put(kept)
    blobs.close()
    other.keys()
    live = {kept_key}

    def during(step: str, _pack: str) -> None:
        if step == "marked":
            # A client uploads the deleted bytes again; its row commits after the second read
            # of the referenced keys, so compaction still drops the old record.
            assert other.put(dead) == dead_key
            other.sync()

    compact_packs(blobs, lambda: set(live), grace_s=0, hook=during)
    other.close()
    assert LocalPackBlobStore(root).get(dead_key) == dead
    assert LocalPackBlobStore(root).get(kept_key) == kept


def test_open_packs_are_left_alone_until_their_writer_closes_them(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    blobs = LocalPackBlobStore(root)
    worker = LocalPackBlobStore(root)  # a worker process still appending to its pack
    mine, theirs = os.urandom(2000), os.urandom(2000)
    blobs.put(mine)
    worker.put(theirs)
    worker.sync()
    report = compact_packs(blobs, set, grace_s=0)
    # Our own pack is sealed and compacted; the worker's open pack is not touched.
    assert _files_containing(root, mine) == []
    assert len(_files_containing(root, theirs)) == 1
    assert report.packs_compacted == 1
    worker.close()
    compact_packs(blobs, set, grace_s=0)
    assert _files_containing(root, theirs) == []
    assert list((root / "packs").glob("*.pack")) == []


_KILLED_RUN = textwrap.dedent(
    """
    import json, sys, time
    from mobiletrain.store.blobs import LocalPackBlobStore
    from mobiletrain.store.compaction import compact_packs
    root, live_file, stop_at = sys.argv[1], sys.argv[2], sys.argv[3]
    live = set(json.load(open(live_file)))
    def hook(step, pack):
        if step == stop_at:
            print("paused", step, pack, flush=True)
            time.sleep(600)
    compact_packs(LocalPackBlobStore(root), lambda: live, grace_s=0, hook=hook)
    print("finished", flush=True)
    """
)


@pytest.mark.parametrize("step", ["marked", "written", "renamed", "unlinked"])
def test_kill_during_compaction_loses_no_live_blob(tmp_path: Path, step: str) -> None:
    root = tmp_path / "blobs"
    blobs = LocalPackBlobStore(root, pack_limit=30_000)
    data = _blobs(30, seed=2)
    keys = [blobs.put(d) for d in data]
    blobs.close()
    live = {k: d for i, (k, d) in enumerate(zip(keys, data, strict=True)) if i % 2}
    dead = [d for i, d in enumerate(data) if i % 2 == 0]
    reader = LocalPackBlobStore(root)
    live_file = tmp_path / "live.json"
    live_file.write_text(json.dumps(sorted(live)))

    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, str(root), str(live_file), step],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(f"paused {step}"), line
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    # The store opens and every live blob reads back, in a new instance and an old one.
    for store in (LocalPackBlobStore(root), reader):
        for key, d in live.items():
            assert store.get(key) == d
    # The next run finishes the job: dead bytes gone, no leftovers, live blobs intact.
    after = LocalPackBlobStore(root)
    compact_packs(after, lambda: set(live), grace_s=0)
    for d in dead:
        assert _files_containing(root, d) == []
    leftovers = [p.name for p in (root / "packs").iterdir() if not p.name.endswith(".pack")]
    assert leftovers == ["compaction.lock"]
    for store in (after, reader, LocalPackBlobStore(root)):
        for key, d in live.items():
            assert store.get(key) == d
    for pack in (root / "packs").glob("*.pack"):
        found = scan_pack(pack)
        assert not found.damaged and not found.incomplete_tail


def test_compact_dispatches_by_store_and_one_run_at_a_time(tmp_path: Path) -> None:
    import fcntl

    blobs = LocalPackBlobStore(tmp_path / "b")
    blobs.put(b"x" * 100)
    fd = os.open(tmp_path / "b" / "packs" / "compaction.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert compact(blobs, set, grace_s=0).skipped == "another compaction is running"
    finally:
        os.close(fd)
    assert compact(blobs, set, grace_s=0).records_dropped == 1


def test_mobiletrain_compact_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mobiletrain.cli import app

    data_dir = tmp_path / "data"
    meta = SqlMetadataStore(f"sqlite:///{data_dir / 'mobiletrain.db'}")
    blobs = LocalPackBlobStore(data_dir / "blobs")
    p = meta.create_project(_project("cli"))
    data = _blobs(6, seed=5)
    samples = [_sample(p, blobs.put(d), len(d), f"c{i}") for i, d in enumerate(data)]
    blobs.close()
    meta.add_samples(samples)
    for s in samples[:3]:
        meta.delete_sample(p.id, s.id)
    meta.close()

    runner = CliRunner()
    done = runner.invoke(app, ["compact", "--data-dir", str(data_dir), "--grace", "0"])
    assert done.exit_code == 0, done.output
    assert "3 unreferenced records dropped" in done.output
    for d in data[:3]:
        assert _files_containing(data_dir / "blobs", d) == []
    fresh = LocalPackBlobStore(data_dir / "blobs")
    for s, d in zip(samples[3:], data[3:], strict=True):
        assert fresh.get(s.sha256) == d
    missing = runner.invoke(app, ["compact", "--data-dir", str(tmp_path / "nothing")])
    assert missing.exit_code == 2


_CHURN = textwrap.dedent(
    """
    import os, random, sys, time
    from mobiletrain.store.blobs import LocalPackBlobStore
    root, journal, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    store = LocalPackBlobStore(root, pack_limit=40_000)
    rng = random.Random(11)
    pool = [os.urandom(rng.randint(500, 4000)) for _ in range(60)]
    live = []
    deadline = time.monotonic() + seconds
    with open(journal, "a") as out:
        while time.monotonic() < deadline:
            if live and rng.random() < 0.4:
                key = live.pop(rng.randrange(len(live)))
                out.write(f"-{key}\\n")  # a delete: the row goes first, bytes stay for now
            else:
                data = rng.choice(pool)  # often bytes stored (and maybe deleted) before
                key = store.put(data)
                store.sync()
                out.write(f"+{key}\\n")  # the row commits right after the sync
                live.append(key)
            out.flush()
            time.sleep(0.002)
    store.close()
    """
)


def _journal_live(journal: Path) -> set[str]:
    """The keys the writer's committed rows refer to (complete lines only)."""
    counts: dict[str, int] = {}
    for line in journal.read_text().splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        key = line[1:].strip()
        counts[key] = counts.get(key, 0) + (1 if line[0] == "+" else -1)
    return {k for k, n in counts.items() if n > 0}


def test_compaction_loses_nothing_under_concurrent_writes_deletes_and_reads(
    tmp_path: Path,
) -> None:
    root = tmp_path / "blobs"
    journal = tmp_path / "journal"
    journal.touch()
    LocalPackBlobStore(root)
    writer = subprocess.Popen([sys.executable, "-c", _CHURN, str(root), str(journal), "6"])
    reader = LocalPackBlobStore(root)
    runs = dropped = 0
    try:
        while writer.poll() is None:
            report = compact_packs(
                LocalPackBlobStore(root), lambda: _journal_live(journal), grace_s=0.3
            )
            runs += 1
            dropped += report.records_dropped
            # Every key whose row was committed before this look reads back, in a reader
            # whose index is older than the compaction.
            for key in _journal_live(journal):
                got = reader.get(key)
                assert hashlib.sha256(got).hexdigest() == key
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0
    assert runs >= 3 and dropped > 0
    live = _journal_live(journal)
    final = LocalPackBlobStore(root)
    compact_packs(final, lambda: live, grace_s=0)
    for key in live:
        assert hashlib.sha256(final.get(key)).hexdigest() == key
    kept = {r.digest.hex() for p in (root / "packs").glob("*.pack") for r in scan_pack(p).records}
    assert kept == live  # nothing unreferenced is left, nothing referenced is missing


def test_a_dead_fraction_threshold_leaves_mostly_live_packs_alone(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    blobs = LocalPackBlobStore(root)
    data = _blobs(10, seed=6)
    keys = [blobs.put(d) for d in data]
    blobs.close()
    live = set(keys[1:])  # one record in ten is dead
    assert compact_packs(blobs, lambda: live, grace_s=0, min_dead_fraction=0.5).packs_compacted == 0
    assert _files_containing(root, data[0]) != []
    report = compact_packs(blobs, lambda: live, grace_s=0, min_dead_fraction=0.05)
    assert report.packs_compacted == 1
    assert _files_containing(root, data[0]) == []


def test_compaction_on_a_full_disk_keeps_the_old_pack_and_finishes_later(
    tmp_path: Path,
) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(
            "cannot mount a tmpfs to fill a disk for real (needs root): "
            + (done.stderr.strip() or f"exit {done.returncode}")
        )
    try:
        root = mnt / "blobs"
        blobs = LocalPackBlobStore(root)
        data = _blobs(200, seed=7)  # about 1.1 MB
        keys = [blobs.put(d) for d in data]
        blobs.close()
        live = {k: d for i, (k, d) in enumerate(zip(keys, data, strict=True)) if i % 4}
        st = os.statvfs(mnt)
        ballast = mnt / "ballast"
        ballast.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 100_000))

        report = compact_packs(blobs, lambda: set(live), grace_s=0)
        assert report.packs_compacted == 0 and report.errors, report
        assert "No space left" in report.errors[0]
        assert [p.name for p in (root / "packs").iterdir() if p.name.endswith(".tmp")] == []
        for key, d in live.items():
            assert LocalPackBlobStore(root).get(key) == d

        ballast.unlink()
        report = compact_packs(blobs, lambda: set(live), grace_s=0)
        assert report.packs_compacted == 1 and not report.errors
        for i, d in enumerate(data):
            if i % 4 == 0:
                assert _files_containing(root, d) == []
        for key, d in live.items():
            assert LocalPackBlobStore(root).get(key) == d
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
