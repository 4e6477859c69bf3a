"""Contract tests every BlobStore implementation must pass (one subclass per implementation)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mobiletrain.core.ports import BlobStore
from mobiletrain.store.blobs import LocalPackBlobStore, open_blob_store


class BlobStoreContract:
    """Subclasses provide ``store`` (and ``reopen`` to get a second handle on the same data)."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> BlobStore:
        raise NotImplementedError

    def reopen(self, store: BlobStore) -> BlobStore:
        raise NotImplementedError

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
