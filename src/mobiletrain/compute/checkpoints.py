"""Epoch checkpoints that a crash cannot tear, and their removal once a job has ended.

TensorFlow free: the executors (API process) use the removal and the sweep; the trainer
(:mod:`mobiletrain.compute.keras.checkpoint`) turns a model into arrays and back.

Layout of a job's checkpoint folder (``<job folder>/checkpoint``)::

    ckpt-000004.ckpt     the newest checkpoint: 4 epochs finished
    ckpt-000003.ckpt     the previous one, kept until a newer one is complete
    .ckpt-000005.tmp-PID a write in progress (or torn by a crash: ignored, removed later)

Each ``.ckpt`` file is self-verifying: a magic, the sha256 of the payload, then the payload
(an ``.npz`` of arrays plus a JSON state with the epoch and the metrics history). A file is
written under a temporary name, fsynced, renamed into place and the folder fsynced, so a
crash leaves either the old set of files or the new one, never a torn ``.ckpt``. A reader
takes the newest file that verifies; a damaged one is renamed ``*.damaged`` and the previous
one is used. No separate "latest" pointer is kept: the file names are the pointer, and a file
that exists under its final name is complete by construction.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mobiletrain.core.ports import MetadataStore

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
"""Name of the checkpoint folder inside a job's folder."""

KEEP = 2
"""Complete checkpoints kept per job: the newest and the one before it."""

MAGIC = b"MTCKPT1\n"
_HEADER = len(MAGIC) + 32
_NAME = re.compile(r"^ckpt-(\d{6,})\.ckpt$")

PAUSE_ENV = "MOBILETRAIN_TEST_PAUSE_IN_CHECKPOINT_WRITE"
"""Test hook: a file path. The first checkpoint write of epoch >= ``PAUSE_AT_EPOCH_ENV``
(default 2) writes half its temporary file, creates that file and waits to be killed. Later
writes (the file exists) do not pause, so the retried attempt runs through."""
PAUSE_AT_EPOCH_ENV = "MOBILETRAIN_TEST_PAUSE_AT_EPOCH"


class CheckpointError(Exception):
    """A checkpoint file that cannot be used (torn, damaged or not this model's)."""


@dataclass
class Checkpoint:
    """Training state after ``epoch`` finished epochs."""

    epoch: int
    history: dict[str, list[float]] = field(default_factory=dict)
    finished: bool = False  # training ended (all epochs or early stop): only export is left
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def file_name(epoch: int) -> str:
    """The final name of the checkpoint taken after ``epoch`` finished epochs."""
    return f"ckpt-{epoch:06d}.ckpt"


def encode(checkpoint: Checkpoint) -> bytes:
    """The bytes of a checkpoint file (header with the payload's sha256, then the payload)."""
    state = {
        "epoch": checkpoint.epoch,
        "history": checkpoint.history,
        "finished": checkpoint.finished,
    }
    buffer = io.BytesIO()
    arrays = dict(checkpoint.arrays)
    arrays["__state__"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    np.savez(buffer, allow_pickle=False, **arrays)
    payload = buffer.getvalue()
    return MAGIC + hashlib.sha256(payload).digest() + payload


def decode(data: bytes) -> Checkpoint:
    """Parse and verify a checkpoint file's bytes; ``CheckpointError`` when damaged."""
    if len(data) < _HEADER or not data.startswith(MAGIC):
        raise CheckpointError(f"not a checkpoint file ({len(data)} bytes, bad header)")
    payload = data[_HEADER:]
    if hashlib.sha256(payload).digest() != data[len(MAGIC) : _HEADER]:
        raise CheckpointError("checksum mismatch (torn or damaged file)")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        state = json.loads(arrays.pop("__state__").tobytes().decode())
        history = {str(k): [float(v) for v in vs] for k, vs in state["history"].items()}
        return Checkpoint(int(state["epoch"]), history, bool(state["finished"]), arrays)
    except (ValueError, KeyError, TypeError, OSError) as exc:  # verified yet unparsable
        raise CheckpointError(f"unreadable payload: {exc}") from exc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pause_for_test(fd: int, data: bytes, epoch: int) -> None:
    """The crash-test hook (see ``PAUSE_ENV``): leave a half-written file and wait."""
    marker = os.environ.get(PAUSE_ENV)
    if not marker or epoch < int(os.environ.get(PAUSE_AT_EPOCH_ENV, "2")):
        return
    if os.path.exists(marker):
        return  # paused once already: this is the retried attempt
    os.write(fd, data[: len(data) // 2])
    os.fsync(fd)
    # The marker appears complete (rename): the test reads the epoch as soon as it exists.
    with open(f"{marker}.tmp", "w") as flag:
        flag.write(str(epoch))
    os.replace(f"{marker}.tmp", marker)
    while True:  # until the test kills this process
        time.sleep(1)


def write(directory: Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` atomically and durably, then drop all but the newest ``KEEP``.

    Temporary file, fsync, rename, fsync of the folder: after a crash at any point the
    folder holds the previous complete checkpoints and at most a stray temporary file.
    """
    if not directory.is_dir():
        directory.mkdir(mode=0o700, parents=True)
        _fsync_dir(directory.parent)  # the folder's own entry survives a power loss too
    data = encode(checkpoint)
    final = directory / file_name(checkpoint.epoch)
    tmp = directory / f".ckpt-{checkpoint.epoch:06d}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _pause_for_test(fd, data, checkpoint.epoch)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, final)
    _fsync_dir(directory)
    _prune(directory, keep={final.name})
    return final


def candidates(directory: Path) -> list[Path]:
    """Complete-looking checkpoint files, newest first (each still has to verify)."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found, reverse=True)]


def read(path: Path) -> Checkpoint:
    """Read and verify one checkpoint file; ``CheckpointError`` when it cannot be used."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read: {exc.strerror or exc}") from exc
    return decode(data)


def set_aside(path: Path) -> None:
    """Rename a damaged checkpoint so that no later attempt tries it again."""
    with contextlib.suppress(OSError):
        os.replace(path, path.with_name(path.name + ".damaged"))


def _prune(directory: Path, keep: set[str]) -> None:
    newest = candidates(directory)[:KEEP]
    keep = keep | {p.name for p in newest}
    for path in directory.iterdir():
        stray_tmp = path.name.startswith(".ckpt-") and f"tmp-{os.getpid()}" not in path.name
        if path.name not in keep and (_NAME.match(path.name) or stray_tmp):
            with contextlib.suppress(OSError):
                path.unlink()


SCRATCH_PREFIX = "export-"
"""Export scratch folders in a job's folder; a worker killed during export leaves one."""


def _leftovers(job_dir: Path) -> list[Path]:
    if not job_dir.is_dir():
        return []
    return [
        path
        for path in job_dir.iterdir()
        if path.is_dir() and (path.name == CHECKPOINT_DIR or path.name.startswith(SCRATCH_PREFIX))
    ]


def remove(job_dir: Path) -> bool:
    """Remove a job's checkpoints and export scratch (the job ended); True if any went."""
    removed = False
    for path in _leftovers(job_dir):
        shutil.rmtree(path, ignore_errors=True)
        removed = removed or not path.exists()
    return removed


def sweep(jobs_root: Path, store: MetadataStore) -> list[str]:
    """Remove the checkpoints (and export scratch) of ended jobs; returns their job ids.

    A folder whose job is in a final state (or unknown to ``store``) goes. Catches jobs that
    ended while no worker of this machine ran them: a queued retry that was cancelled, a
    server stopped before its executor could clean up.
    """
    if not jobs_root.is_dir():
        return []
    removed = []
    for path in sorted(jobs_root.iterdir()):
        if not _leftovers(path):
            continue
        job = store.get_job(path.name)
        if (job is None or job.state.is_terminal) and remove(path):
            removed.append(path.name)
    if removed:
        log.info("removed the checkpoints of %d ended jobs", len(removed))
    return removed
