"""The local pack store under real faults: a full disk, failing writes, damaged packs, file modes.

Every test injects the fault for real: a small tmpfs that really runs out of space, a write call
that really writes part of a record and then fails, bytes of a pack really flipped or cut.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mobiletrain.core.ports import BlobDamaged
from mobiletrain.store import blobs as blobs_module
from mobiletrain.store.blobs import (
    HEADER_SIZE,
    MAGIC_V1,
    MAGIC_V2,
    LocalPackBlobStore,
    scan_pack,
)
from mobiletrain.store.compaction import compact_packs


def _packs(root: Path) -> list[Path]:
    return sorted((root / "packs").glob("*.pack"))


def _assert_clean(root: Path) -> None:
    """Every pack is a sequence of whole records: no garbage, no torn tail."""
    for pack in _packs(root):
        found = scan_pack(pack)
        assert found.damaged == [], f"{pack.name}: damaged regions {found.damaged}"
        assert not found.incomplete_tail, f"{pack.name}: a torn record was left behind"
        assert found.next_offset == pack.stat().st_size


def _read_in_new_process(root: Path, keys: list[str]) -> dict[str, str]:
    """sha256 of every blob as another process reads it (``KeyError``/``BlobDamaged`` named)."""
    code = textwrap.dedent(
        """
        import hashlib, sys
        from mobiletrain.store.blobs import LocalPackBlobStore
        store = LocalPackBlobStore(sys.argv[1])
        for key in sys.stdin.read().split():
            try:
                print(key, hashlib.sha256(store.get(key)).hexdigest())
            except KeyError:
                print(key, "missing")
            except OSError as exc:
                print(key, type(exc).__name__)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(root)],
        input="\n".join(keys),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return dict(line.split() for line in out.splitlines())


# -- (a) a disk that is really full ------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (needs root: CI runs the tests as root)."""
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
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_then_freed_loses_no_accepted_blob(small_tmpfs: Path) -> None:
    ballast = small_tmpfs / "ballast"
    ballast.write_bytes(b"\0" * 600_000)
    root = small_tmpfs / "blobs"
    store = LocalPackBlobStore(root)
    rng = random.Random(7)
    accepted: dict[str, bytes] = {}
    failures: list[int] = []

    def fill(limit: int) -> None:
        for _ in range(limit):
            data = rng.randbytes(rng.randint(1_000, 60_000))
            try:
                key = store.put(data)
                store.sync()
            except OSError as exc:
                failures.append(exc.errno or 0)
                continue
            accepted[key] = data

    fill(80)  # 80 x ~30 KB does not fit in what is left of 2 MiB
    assert errno.ENOSPC in failures, "the disk never filled up"
    assert set(failures) == {errno.ENOSPC}
    full_count = len(accepted)
    assert full_count > 10
    for key, data in accepted.items():
        assert store.get(key) == data
    _assert_clean(root)

    ballast.unlink()  # space comes back
    failures.clear()
    fill(15)
    assert len(accepted) > full_count + 5, "puts did not work again once space was back"
    for key, data in accepted.items():
        assert store.get(key) == data
    store.close()
    _assert_clean(root)

    again = LocalPackBlobStore(root)
    for key, data in accepted.items():
        assert again.get(key) == data
    seen = _read_in_new_process(root, list(accepted))
    assert seen == {k: hashlib.sha256(v).hexdigest() for k, v in accepted.items()}


# -- (b) a write that fails half-way ------------------------------------------------------------


def _failing_write(fail_after: int, exc: BaseException) -> Callable[[int, memoryview], int]:
    """A write call that really writes ``fail_after`` bytes in total, then raises ``exc``."""
    written = 0

    def write(fd: int, data: memoryview) -> int:
        nonlocal written
        room = fail_after - written
        if room <= 0:
            raise exc
        n = os.write(fd, data[:room])
        written += n
        return n

    return write


@pytest.mark.parametrize(
    ("fail_after", "exc"),
    [
        (0, OSError(errno.ENOSPC, "No space left on device")),
        (10, OSError(errno.EIO, "Input/output error")),  # inside the header
        (HEADER_SIZE, OSError(errno.ENOSPC, "No space left on device")),  # header only
        (HEADER_SIZE + 5000, OSError(errno.EIO, "Input/output error")),  # half the data
        (HEADER_SIZE + 5000, RuntimeError("not an I/O error at all")),
    ],
)
def test_failed_write_leaves_a_consistent_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_after: int, exc: BaseException
) -> None:
    root = tmp_path / "b"
    store = LocalPackBlobStore(root)
    before = {store.put(d): d for d in (os.urandom(3000), os.urandom(7000))}
    store.sync()
    doomed = os.urandom(10_000)
    monkeypatch.setattr(blobs_module, "_write", _failing_write(fail_after, exc))
    with pytest.raises(type(exc)) as raised:
        store.put(doomed)
    if isinstance(exc, OSError):
        assert raised.value.errno == exc.errno
    monkeypatch.undo()
    doomed_key = hashlib.sha256(doomed).hexdigest()
    assert not store.exists(doomed_key)
    _assert_clean(root)  # truncated back to the last whole record

    after = {store.put(d): d for d in (os.urandom(4000), os.urandom(100))}
    store.sync()
    for key, data in (before | after).items():
        assert store.get(key) == data
    assert not LocalPackBlobStore(root).exists(doomed_key)
    seen = _read_in_new_process(root, [*before, *after, doomed_key])
    assert seen.pop(doomed_key) == "missing"
    assert seen == {k: hashlib.sha256(v).hexdigest() for k, v in (before | after).items()}


def test_failed_write_and_failed_truncate_abandon_the_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "b"
    store = LocalPackBlobStore(root)
    first = store.put(b"first" * 100)
    store.sync()
    monkeypatch.setattr(
        blobs_module, "_write", _failing_write(HEADER_SIZE + 20, OSError(errno.EIO, "EIO"))
    )

    def no_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "truncate failed too")

    monkeypatch.setattr(blobs_module.os, "ftruncate", no_truncate)
    with pytest.raises(OSError):
        store.put(b"torn" * 1000)
    monkeypatch.undo()
    second = store.put(b"second" * 100)
    store.sync()
    packs = _packs(root)
    assert len(packs) == 2, "the damaged pack must be left for a new one"
    torn = scan_pack(packs[0] if store.location(first)[0] == packs[0].name else packs[1])
    assert torn.incomplete_tail  # the torn record is still there, never indexed
    fresh = LocalPackBlobStore(root)
    assert fresh.get(first) == b"first" * 100
    assert fresh.get(second) == b"second" * 100
    assert not fresh.exists(hashlib.sha256(b"torn" * 1000).hexdigest())


def test_failed_fsync_forgets_the_unsynced_puts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalPackBlobStore(tmp_path / "b")
    kept = store.put(b"synced")
    store.sync()
    lost = store.put(b"not synced")

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "fsync failed")

    monkeypatch.setattr(blobs_module.os, "fsync", failing_fsync)
    with pytest.raises(OSError) as raised:
        store.sync()
    assert raised.value.errno == errno.EIO
    monkeypatch.undo()
    # The put is not trusted any more: putting it again writes a fresh copy that is synced.
    assert store.put(b"not synced") == lost
    store.sync()
    assert store.location(lost)[0] != store.location(kept)[0]
    assert store.get(lost) == b"not synced"
    assert store.get(kept) == b"synced"


# -- (c) damaged packs ------------------------------------------------------------------------


def _fill(root: Path, count: int, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    store = LocalPackBlobStore(root)
    blobs = {}
    for _ in range(count):
        data = rng.randbytes(rng.randint(0, 5000))
        blobs[store.put(data)] = data
    store.close()
    return blobs


def _check_reads(root: Path, blobs: dict[str, bytes]) -> tuple[set[str], set[str], set[str]]:
    """(readable, missing, damaged) keys; asserts no read ever returns wrong bytes."""
    store = LocalPackBlobStore(root)
    ok, missing, damaged = set(), set(), set()
    for key, data in blobs.items():
        try:
            got = store.get(key)
        except KeyError:
            missing.add(key)
            continue
        except BlobDamaged:
            damaged.add(key)
            continue
        assert got == data, "a read returned wrong bytes"
        ok.add(key)
    return ok, missing, damaged


def _records(root: Path) -> list[tuple[str, int, int, int]]:
    """(key, header offset, data offset, end) of every record of the single pack."""
    (pack,) = _packs(root)
    return [
        (r.digest.hex(), r.header_offset, r.data_offset, r.end) for r in scan_pack(pack).records
    ]


def test_bit_flips_in_headers_and_data_are_skipped_and_named(tmp_path: Path) -> None:
    root = tmp_path / "b"
    blobs = _fill(root, 60, seed=1)
    recs = _records(root)
    (pack,) = _packs(root)
    raw = bytearray(pack.read_bytes())
    hit_header = [recs[i] for i in (5, 17, 40)]  # magic, digest, length field
    raw[hit_header[0][1] + 1] ^= 0x01
    raw[hit_header[1][1] + 10] ^= 0x80
    raw[hit_header[2][1] + 40] ^= 0x04
    hit_data = [r for r in recs[20:30] if r[3] > r[2]][:3]
    for r in hit_data:
        raw[(r[2] + r[3]) // 2] ^= 0xFF
    pack.write_bytes(bytes(raw))

    found = scan_pack(pack)
    assert len(found.damaged) == 3
    ok, missing, damaged = _check_reads(root, blobs)
    assert missing == {r[0] for r in hit_header}
    assert damaged == {r[0] for r in hit_data}
    assert ok == set(blobs) - missing - damaged  # every record after each damage is found


def test_overwritten_region_and_truncation(tmp_path: Path) -> None:
    root = tmp_path / "b"
    blobs = _fill(root, 40, seed=2)
    recs = _records(root)
    (pack,) = _packs(root)
    raw = bytearray(pack.read_bytes())
    start, end = recs[10][1] + 7, recs[13][2] + 3  # from inside #10 into #13's data
    raw[start:end] = random.Random(3).randbytes(end - start)
    cut = recs[35][2] + 1  # cut inside #35's data
    pack.write_bytes(bytes(raw[:cut]))

    ok, missing, damaged = _check_reads(root, blobs)
    lost = {r[0] for r in recs[10:14]} | {r[0] for r in recs[35:]}
    assert ok == set(blobs) - lost
    assert missing | damaged == lost
    # The server can still append after the damage; a new instance finds everything good.
    store = LocalPackBlobStore(root)
    new_key = store.put(b"after the damage")
    store.close()
    assert LocalPackBlobStore(root).get(new_key) == b"after the damage"


def test_legacy_mtb1_packs_are_read_and_resynced_by_checking_the_data(tmp_path: Path) -> None:
    root = tmp_path / "b"
    (root / "packs").mkdir(parents=True)
    rng = random.Random(4)
    blobs = [rng.randbytes(rng.randint(1, 3000)) for _ in range(20)]
    raw = bytearray()
    offsets = []
    for data in blobs:
        offsets.append(len(raw))
        raw += MAGIC_V1 + hashlib.sha256(data).digest() + len(data).to_bytes(8, "big") + data
    raw[offsets[8] + 2] ^= 0x10  # break #8's magic: the scan must resync on #9
    raw[offsets[14] + 36] ^= 0x40  # #14's length now runs far past the end of the pack
    (root / "packs" / "legacy.pack").write_bytes(bytes(raw))
    ok, missing, damaged = _check_reads(root, {hashlib.sha256(b).hexdigest(): b for b in blobs})
    assert missing == {hashlib.sha256(blobs[i]).hexdigest() for i in (8, 14)}
    assert len(ok) == 18 and not damaged
    # Compaction rewrites a legacy pack into checksummed records; every good blob stays.
    live = {hashlib.sha256(b).hexdigest() for b in blobs}
    store = LocalPackBlobStore(root)
    assert compact_packs(store, lambda: live, grace_s=0).packs_compacted == 1
    (pack,) = _packs(root)
    assert pack.read_bytes()[:4] == MAGIC_V2
    assert _check_reads(root, {hashlib.sha256(b).hexdigest(): b for b in blobs})[0] == ok


def test_a_good_copy_elsewhere_replaces_a_damaged_record(tmp_path: Path) -> None:
    root = tmp_path / "b"
    data = os.urandom(2000)
    a = LocalPackBlobStore(root)
    key = a.put(data)
    a.close()
    # A second process wrote the same bytes into its own pack (e.g. during a compaction).
    (first,) = _packs(root)
    shutil.copy(first, root / "packs" / "copy.pack")
    raw = bytearray(first.read_bytes())
    raw[-1] ^= 0xFF
    first.write_bytes(bytes(raw))
    store = LocalPackBlobStore(root)
    assert store.get(key) == data


# -- concurrency: a reader rescans while another process appends --------------------------------


def test_reader_sees_every_record_a_concurrent_writer_acknowledges(tmp_path: Path) -> None:
    root = tmp_path / "b"
    reader = LocalPackBlobStore(root)
    code = textwrap.dedent(
        """
        import os, sys
        from mobiletrain.store.blobs import LocalPackBlobStore
        store = LocalPackBlobStore(sys.argv[1], pack_limit=200_000)
        for i in range(300):
            key = store.put(os.urandom(1 + (i * 7919) % 20_000))
            store.sync()
            print(key, flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    count = 0
    for line in proc.stdout:
        key = line.strip()
        assert hashlib.sha256(reader.get(key)).hexdigest() == key
        count += 1
    assert proc.wait(timeout=60) == 0
    assert count == 300
    _assert_clean(root)


# -- (e) owner-only files ---------------------------------------------------------------------


def test_packs_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        root = tmp_path / "data" / "blobs"
        store = LocalPackBlobStore(root)
        store.put(b"private")
        store.sync()
    finally:
        os.umask(old)
    for folder in (tmp_path / "data", root, root / "packs"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    (pack,) = _packs(root)
    assert stat.S_IMODE(pack.stat().st_mode) == 0o600
    wider = LocalPackBlobStore(tmp_path / "shared", file_mode=0o640, dir_mode=0o750)
    wider.put(b"group readable")
    (pack,) = _packs(tmp_path / "shared")
    assert stat.S_IMODE(pack.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "shared" / "packs").stat().st_mode) == 0o750
