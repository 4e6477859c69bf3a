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
