"""Contract tests every BlobStore implementation must pass (one subclass per implementation)."""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mobiletrain.core.ports import BlobDamaged, BlobStore
from mobiletrain.store import blobs as blobs_module
from mobiletrain.store.blobs import LocalPackBlobStore, open_blob_store
from mobiletrain.store.compaction import compact


class BlobStoreContract:
    """Subclasses provide ``store`` (and ``reopen`` to get a second handle on the same data)."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> BlobStore:
        raise NotImplementedError

    def reopen(self, store: BlobStore) -> BlobStore:
        raise NotImplementedError

    def fail_puts(self, store: BlobStore) -> Callable[[], None]:
        """Make the next puts fail for real (half-written bytes / a dropped connection);
        returns a function that ends the fault."""
        raise NotImplementedError

    def damage(self, store: BlobStore, key: str) -> None:
        """Change the stored bytes of ``key`` behind the store's back."""
        raise NotImplementedError

    def test_failed_put_raises_oserror_and_stores_nothing(self, store: BlobStore) -> None:
        kept = store.put(b"before the fault")
        store.sync()
        data = os.urandom(50_000)
        heal = self.fail_puts(store)
        try:
            with pytest.raises(OSError) as raised:
                store.put(data)
            assert raised.value.errno is not None
        finally:
            heal()
        key = hashlib.sha256(data).hexdigest()
        assert not store.exists(key)
        assert not self.reopen(store).exists(key)
        with pytest.raises(KeyError):
            self.reopen(store).get(key)
        # The store works again at once, and nothing earlier was hurt.
        assert store.put(data) == key
        store.sync()
        assert self.reopen(store).get(key) == data
        assert self.reopen(store).get(kept) == b"before the fault"

    def test_damaged_blob_raises_blob_damaged_never_wrong_bytes(self, store: BlobStore) -> None:
        key = store.put(b"x" * 1000)
        other = store.put(b"y" * 1000)
        store.sync()
        self.damage(store, key)
        with pytest.raises(BlobDamaged) as raised:
            self.reopen(store).get(key)
        assert raised.value.sha256 == key
        assert isinstance(raised.value, OSError)
        assert self.reopen(store).get(other) == b"y" * 1000

    def test_restore_replaces_a_damaged_copy(self, store: BlobStore) -> None:
        data = os.urandom(4000)
        key = store.put(data)
        store.sync()
        self.damage(store, key)
        assert store.put(data) == key  # a plain put may settle for the stored (damaged) copy
        assert store.restore(data) == key
        store.sync()
        assert store.get(key) == data
        assert self.reopen(store).get(key) == data

    def test_unreferenced_blobs_are_deleted(self, store: BlobStore) -> None:
        keep = [store.put(os.urandom(3000)) for _ in range(3)]
        drop = [store.put(os.urandom(3000)) for _ in range(3)]
        store.sync()
        time.sleep(2.1)  # S3 LastModified has 1 s resolution; recent objects are kept
        report = compact(store, lambda: set(keep), grace_s=0)
        assert report.records_dropped == 3
        fresh = self.reopen(store)
        for key in keep:
            assert hashlib.sha256(fresh.get(key)).hexdigest() == key
        for key in drop:
            assert not fresh.exists(key)
            with pytest.raises(KeyError):
                fresh.get(key)

    def test_put_get_roundtrip_and_key_is_sha256(self, store: BlobStore) -> None:
        data = b"hello" * 1000
        key = store.put(data)
        assert key == hashlib.sha256(data).hexdigest()
        assert store.get(key) == data
        assert store.size(key) == len(data)
        assert store.exists(key)

    def test_put_is_idempotent(self, store: BlobStore) -> None:
        assert store.put(b"same") == store.put(b"same")

    def test_missing_blob_raises_key_error(self, store: BlobStore) -> None:
        with pytest.raises(KeyError):
            store.get("0" * 64)
        assert not store.exists("0" * 64)

    def test_read_range(self, store: BlobStore) -> None:
        data = os.urandom(100_000)
        key = store.put(data)
        got = b"".join(store.read_range(key, 1000, 50_000, chunk_size=4096))
        assert got == data[1000:51000]
        with pytest.raises(ValueError):
            list(store.read_range(key, 99_000, 5000))

    def test_empty_blob(self, store: BlobStore) -> None:
        key = store.put(b"")
        assert store.get(key) == b""

    def test_other_handle_sees_writes(self, store: BlobStore) -> None:
        other = self.reopen(store)
        key = store.put(b"written by the first handle")
        store.sync()
        assert other.get(key) == b"written by the first handle"
        key2 = other.put(b"written by the second")
        other.sync()
        assert store.get(key2) == b"written by the second"


class TestLocalPackBlobStore(BlobStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> BlobStore:
        return LocalPackBlobStore(tmp_path / "blobs")

    def reopen(self, store: BlobStore) -> BlobStore:
        assert isinstance(store, LocalPackBlobStore)
        return LocalPackBlobStore(store.root)

    def fail_puts(self, store: BlobStore) -> Callable[[], None]:
        # The write call writes half of what it is given, then fails like a full disk.
        def half_then_enospc(fd: int, data: memoryview) -> int:
            os.write(fd, data[: max(1, len(data) // 2)])
            raise OSError(errno.ENOSPC, "No space left on device")

        blobs_module._write = half_then_enospc

        def heal() -> None:
            blobs_module._write = os.write

        return heal

    def damage(self, store: BlobStore, key: str) -> None:
        assert isinstance(store, LocalPackBlobStore)
        name, offset, _ = store.location(key)
        with open(store.packs / name, "r+b") as fh:
            fh.seek(offset + 10)
            byte = fh.read(1)
            fh.seek(offset + 10)
            fh.write(bytes([byte[0] ^ 0x01]))

    def test_torn_record_is_ignored_and_data_survives_reopen(self, tmp_path: Path) -> None:
        root = tmp_path / "blobs"
        store = LocalPackBlobStore(root)
        key = store.put(b"complete record")
        store.close()
        # Simulate a crash in the middle of writing a second record.
        pack = next((root / "packs").glob("*.pack"))
        with open(pack, "ab") as fh:
            fh.write(b"MTB1" + b"\x00" * 20)
        again = LocalPackBlobStore(root)
        assert again.get(key) == b"complete record"
        new_key = again.put(b"after the crash")
        assert LocalPackBlobStore(root).get(new_key) == b"after the crash"

    def test_packs_roll_over(self, tmp_path: Path) -> None:
        store = LocalPackBlobStore(tmp_path / "b", pack_limit=1000)
        keys = [store.put(os.urandom(600)) for _ in range(5)]
        assert len(list((tmp_path / "b" / "packs").glob("*.pack"))) >= 3
        fresh = LocalPackBlobStore(tmp_path / "b")
        assert all(fresh.exists(k) for k in keys)

    def test_damaged_bytes_are_detected(self, tmp_path: Path) -> None:
        store = LocalPackBlobStore(tmp_path / "b")
        key = store.put(b"x" * 100)
        store.close()
        pack = next((tmp_path / "b" / "packs").glob("*.pack"))
        raw = bytearray(pack.read_bytes())
        raw[-1] ^= 0xFF
        pack.write_bytes(bytes(raw))
        with pytest.raises(OSError):
            LocalPackBlobStore(tmp_path / "b").get(key)

    def test_open_blob_store_by_url(self, tmp_path: Path) -> None:
        assert isinstance(open_blob_store(f"file://{tmp_path}/x"), LocalPackBlobStore)
        assert isinstance(open_blob_store(str(tmp_path / "y")), LocalPackBlobStore)
        with pytest.raises(ValueError, match="allowed: file"):
            open_blob_store("ftp://nowhere/x")


class TestS3BlobStore(BlobStoreContract):
    """The same contract on an S3-compatible server (moto) that the tests start on loopback."""

    @pytest.fixture
    def store(self, s3_bucket_url: str) -> BlobStore:
        return open_blob_store(s3_bucket_url)

    def reopen(self, store: BlobStore) -> BlobStore:
        from mobiletrain.store.s3 import S3BlobStore

        assert isinstance(store, S3BlobStore)
        return S3BlobStore(
            store.bucket, store.prefix, endpoint_url=store.endpoint_url, region=store.region
        )

    def fail_puts(self, store: BlobStore) -> Callable[[], None]:
        from botocore.exceptions import EndpointConnectionError

        from mobiletrain.store.s3 import S3BlobStore

        assert isinstance(store, S3BlobStore)

        # Every attempt (retries included) loses its connection before the server answers.
        def drop(**_: object) -> None:
            raise EndpointConnectionError(endpoint_url=store.endpoint_url or "s3")

        events = store.client.meta.events
        events.register("before-send.s3.PutObject", drop, unique_id="fault")
        return lambda: events.unregister("before-send.s3.PutObject", unique_id="fault")

    def damage(self, store: BlobStore, key: str) -> None:
        from mobiletrain.store.s3 import S3BlobStore

        assert isinstance(store, S3BlobStore)
        body = store.client.get_object(Bucket=store.bucket, Key=store.key(key))["Body"].read()
        store.client.put_object(
            Bucket=store.bucket, Key=store.key(key), Body=bytes([body[0] ^ 1]) + body[1:]
        )

    def test_one_object_per_blob_under_the_prefix(self, store: BlobStore) -> None:
        from mobiletrain.store.s3 import S3BlobStore

        assert isinstance(store, S3BlobStore)
        key = store.put(b"layout")
        listed = store.client.list_objects_v2(Bucket=store.bucket)["Contents"]
        assert [o["Key"] for o in listed] == [f"mobiletrain/blobs/{key[:2]}/{key}"]

    def test_read_range_is_one_ranged_get(self, store: BlobStore) -> None:
        from mobiletrain.store.s3 import S3BlobStore

        assert isinstance(store, S3BlobStore)
        data = os.urandom(300_000)
        key = store.put(data)
        calls: list[dict[str, object]] = []
        store.client.meta.events.register(
            "before-call.s3.GetObject", lambda params, **_: calls.append(params)
        )
        got = b"".join(store.read_range(key, 123_456, 100_000, chunk_size=8192))
        assert got == data[123_456:223_456]
        assert len(calls) == 1
        assert calls[0]["headers"]["Range"] == "bytes=123456-223455"  # type: ignore[index]

    def test_range_past_the_end_and_start_past_the_end(self, store: BlobStore) -> None:
        key = store.put(b"0123456789")
        with pytest.raises(ValueError):
            list(store.read_range(key, 20, 5))
        with pytest.raises(ValueError):
            list(store.read_range(key, 11, 0))
        assert list(store.read_range(key, 10, 0)) == []
        with pytest.raises(KeyError):
            list(store.read_range("0" * 64, 0, 1))

    def test_get_many_keeps_order(self, store: BlobStore) -> None:
        blobs = [os.urandom(100 + i) for i in range(20)]
        keys = [store.put(b) for b in blobs]
        assert store.get_many(keys) == blobs

    def test_damaged_object_is_detected(self, store: BlobStore) -> None:
        from mobiletrain.store.s3 import S3BlobStore

        assert isinstance(store, S3BlobStore)
        key = store.put(b"x" * 100)
        store.client.put_object(Bucket=store.bucket, Key=store.key(key), Body=b"y" * 100)
        with pytest.raises(OSError):
            store.get(key)

    def test_url_parameters(self) -> None:
        from mobiletrain.store.s3 import S3BlobStore

        s = S3BlobStore.from_url(
            "s3://bkt/a/b/?endpoint_url=http://127.0.0.1:1&region=eu-west-1&addressing_style=path"
        )
        assert (s.bucket, s.prefix, s.endpoint_url, s.region) == (
            "bkt",
            "a/b",
            "http://127.0.0.1:1",
            "eu-west-1",
        )
        assert s.key("ab" + "0" * 62) == "a/b/blobs/ab/ab" + "0" * 62
        with pytest.raises(ValueError, match="allowed: endpoint_url"):
            S3BlobStore.from_url("s3://bkt/x?secret=1")
        with pytest.raises(KeyError):
            s.key("../../etc")
