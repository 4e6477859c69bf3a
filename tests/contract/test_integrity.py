"""Integrity checks on every pairing of metadata store (SQLite, PostgreSQL) and blob store (local
packs, S3): bytes damaged or removed behind the stores' backs are found exactly, marked,
skipped by training, read as SAMPLE_DAMAGED, and restored by uploading the same bytes again.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mobiletrain.compute.sample_bytes import load_training_bytes
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.integrity import DAMAGED, MISSING, check_integrity
from mobiletrain.core.ports import BlobStore, MetadataStore
from mobiletrain.core.services import DatasetService, IncomingSample, ProjectService
from mobiletrain.core.types import EventKind, InputSpec, SampleStatus
from mobiletrain.core.uploads import ResumableUploads
from mobiletrain.core.validation import Limits
from mobiletrain.store.blobs import HEADER_SIZE, LocalPackBlobStore, open_blob_store
from mobiletrain.store.sql import SqlMetadataStore

POSTGRES_URL = os.environ.get("MOBILETRAIN_TEST_POSTGRES_URL", "")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metadata(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    if request.param == "sqlite":
        store = SqlMetadataStore(f"sqlite:///{tmp_path}/meta.db")
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


@dataclass
class BlobBackend:
    """A blob store plus the two ways to hurt it behind its back."""

    url: str
    damage: Callable[[BlobStore, str], None]  # the bytes change: sha256 check fails
    remove: Callable[[BlobStore, str], None]  # the blob is gone

    def open(self) -> BlobStore:
        return open_blob_store(self.url)


def _flip_pack(store: BlobStore, key: str, where: int) -> None:
    assert isinstance(store, LocalPackBlobStore)
    name, data_offset, _ = store.location(key)
    with open(store.packs / name, "r+b") as fh:
        fh.seek(data_offset + where)
        byte = fh.read(1)
        fh.seek(data_offset + where)
        fh.write(bytes([byte[0] ^ 0x04]))


def _s3_damage(store: BlobStore, key: str) -> None:
    from mobiletrain.store.s3 import S3BlobStore

    assert isinstance(store, S3BlobStore)
    body = store.client.get_object(Bucket=store.bucket, Key=store.key(key))["Body"].read()
    store.client.put_object(Bucket=store.bucket, Key=store.key(key), Body=body[:-1] + b"?")


def _s3_remove(store: BlobStore, key: str) -> None:
    from mobiletrain.store.s3 import S3BlobStore

    assert isinstance(store, S3BlobStore)
    store.client.delete_object(Bucket=store.bucket, Key=store.key(key))


@pytest.fixture(params=["packs", "s3"])
def blob_backend(request: pytest.FixtureRequest, tmp_path: Path) -> BlobBackend:
    if request.param == "packs":
        return BlobBackend(
            str(tmp_path / "blobs"),
            damage=lambda s, k: _flip_pack(s, k, 20),  # in the data
            # In the header's sha256: the header checksum fails, a scan skips the record.
            remove=lambda s, k: _flip_pack(s, k, -HEADER_SIZE + 10),
        )
    url = request.getfixturevalue("s3_bucket_url")
    return BlobBackend(url, damage=_s3_damage, remove=_s3_remove)


def _datasets(store: MetadataStore, blobs: BlobStore) -> DatasetService:
    limits = Limits()
    return DatasetService(store, blobs, ProjectService(store, limits), limits, verify_threads=0)


def test_damage_is_found_marked_skipped_and_restored(
    metadata: MetadataStore, blob_backend: BlobBackend, make_image: Callable[..., bytes]
) -> None:
    blobs = blob_backend.open()
    datasets = _datasets(metadata, blobs)
    main = datasets.projects.create("main", input_spec=InputSpec(16, 16))
    other = datasets.projects.create("other", input_spec=InputSpec(16, 16))
    images = {f"m{i}": make_image(i) for i in range(8)}
    labels = {cid: "ab"[i % 2] for i, cid in enumerate(images)}
    datasets.upload("main", [IncomingSample(c, labels[c], d) for c, d in images.items()])
    # The other project shares one image (same bytes, so the same blob) and has one of its own.
    shared = images["m2"]
    datasets.upload(
        "other", [IncomingSample("o1", "a", shared), IncomingSample("o2", "a", make_image(99))]
    )
    blobs.sync()
    blobs.close()

    sha = {cid: hashlib.sha256(d).hexdigest() for cid, d in images.items()}
    hurt = blob_backend.open()
    blob_backend.damage(hurt, sha["m2"])  # also hits o1 in the other project
    blob_backend.damage(hurt, sha["m5"])
    blob_backend.remove(hurt, sha["m6"])
    hurt.close()

    blobs = blob_backend.open()  # a fresh index, as after a restart
    datasets = _datasets(metadata, blobs)
    expected = {
        ("main", "m2", DAMAGED),
        ("other", "o1", DAMAGED),
        ("main", "m5", DAMAGED),
        ("main", "m6", MISSING),
    }

    quick = check_integrity(metadata, blobs, full=False)
    assert {(d.project, d.sample.client_id, d.problem) for d in quick.damaged} == {
        ("main", "m6", MISSING)
    }
    report = check_integrity(metadata, blobs, full=True)
    assert {(d.project, d.sample.client_id, d.problem) for d in report.damaged} == expected
    assert report.samples_checked == 10 and report.blobs_checked == 9
    assert report.by_project_label() == {("main", "a"): 2, ("main", "b"): 1, ("other", "a"): 1}
    assert metadata.damaged_samples() == []  # no repair: nothing marked

    # Reading one: a stable code, never a KeyError or wrong bytes.
    m6 = metadata.get_sample_by_client_id(main.id, "m6")
    assert m6 is not None
    with pytest.raises(MobiletrainError) as failed:
        datasets.get_data("main", m6.id)
    assert failed.value.code is ErrorCode.SAMPLE_DAMAGED and "'m6'" in failed.value.message

    # Training (before any repair) skips what it cannot read and names it.
    events: list[tuple[EventKind, dict[str, Any]]] = []
    kept, data = load_training_bytes(
        blobs, main, metadata.all_samples(main.id), lambda k, d: events.append((k, d))
    )
    assert {s.client_id for s in kept} == set(images) - {"m2", "m5", "m6"}
    assert data == [images[s.client_id] for s in kept]
    [(kind, event)] = events
    assert kind is EventKind.LOG and event["level"] == "warning"
    assert {(s["client_id"], s["problem"]) for s in event["skipped_samples"]} == {
        ("m2", DAMAGED),
        ("m5", DAMAGED),
        ("m6", MISSING),
    }
    assert "m6" in event["message"]

    repaired = check_integrity(metadata, blobs, full=True, repair=True)
    assert repaired.marked == 4 and repaired.cleared == 0
    assert {s.client_id for s in metadata.damaged_samples()} == {"m2", "o1", "m5", "m6"}
    assert check_integrity(metadata, blobs, full=False).unmarked == []
    events.clear()
    kept, _ = load_training_bytes(
        blobs, main, metadata.all_samples(main.id), lambda k, d: events.append((k, d))
    )
    assert {s["problem"] for s in events[0][1]["skipped_samples"]} == {"marked damaged"}

    # Uploading the same bytes again restores them: resumably (a marked sample counts as not
    # stored, so its client id opens an upload), by client id, and by content + label.
    uploads = ResumableUploads(metadata, blobs, datasets.projects, datasets)
    opened = uploads.open("main", "m6", labels["m6"], len(images["m6"]))
    assert opened.sample is None and opened.session is not None and opened.offset == 0
    uploads.append(opened.session.id, 0, images["m6"])
    restored = uploads.finish(opened.session.id)
    assert restored.status is SampleStatus.ACCEPTED and "restored" in restored.reason
    assert restored.sample_id == m6.id
    again = [IncomingSample(c, labels[c], images[c]) for c in ("m2", "m5")]
    summary = datasets.upload("main", again)
    assert [r.status for r in summary.results] == [SampleStatus.ACCEPTED] * 2, [
        (r.error_code, r.reason) for r in summary.results
    ]
    assert all("restored" in r.reason for r in summary.results)
    summary = datasets.upload("other", [IncomingSample("o1-again", "a", shared)])
    assert summary.results[0].status is SampleStatus.ACCEPTED
    assert metadata.damaged_samples() == []
    for cid in ("m2", "m5", "m6"):
        sample = metadata.get_sample_by_client_id(main.id, cid)
        assert sample is not None and datasets.get_data("main", sample.id)[1] == images[cid]
    blobs.close()

    fresh = blob_backend.open()
    final = check_integrity(metadata, fresh, full=True, repair=True)
    assert final.damaged == [] and final.cleared == 0
    fresh.close()
    del other
