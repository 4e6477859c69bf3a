"""Epoch checkpoints: atomic files, a real kill inside a write, damaged files, the sweep.

The file layer (TensorFlow free) is tested with real files and a real SIGKILLed process; the
Keras layer with a tiny model and with ``train_and_export`` on scikit-learn digits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mobiletrain.compute import checkpoints
from mobiletrain.compute.checkpoints import Checkpoint, CheckpointError
from mobiletrain.core.types import (
    EventKind,
    Hyperparameters,
    InputSpec,
    Job,
    JobState,
    Project,
    TaskType,
)
from mobiletrain.store.sql import SqlMetadataStore


def _ckpt(epoch: int, finished: bool = False) -> Checkpoint:
    rng = np.random.default_rng(epoch)
    return Checkpoint(
        epoch=epoch,
        history={"loss": [float(e) for e in range(epoch)]},
        finished=finished,
        arrays={
            "model/0": rng.normal(size=(64, 32)).astype(np.float32),
            "optimizer/0": np.array(7, dtype=np.int64),
        },
    )


def test_write_read_round_trip_keeps_the_two_newest(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    for epoch in range(1, 5):
        checkpoints.write(folder, _ckpt(epoch))
    assert [p.name for p in checkpoints.candidates(folder)] == [
        "ckpt-000004.ckpt",
        "ckpt-000003.ckpt",
    ]
    assert sorted(os.listdir(folder)) == ["ckpt-000003.ckpt", "ckpt-000004.ckpt"]  # no temp
    back = checkpoints.read(folder / "ckpt-000004.ckpt")
    assert back.epoch == 4 and not back.finished
    assert back.history == {"loss": [0.0, 1.0, 2.0, 3.0]}
    np.testing.assert_array_equal(back.arrays["model/0"], _ckpt(4).arrays["model/0"])
    assert int(back.arrays["optimizer/0"]) == 7
    assert oct(os.stat(folder / "ckpt-000004.ckpt").st_mode & 0o777) == "0o600"
    # The finished marker of the last epoch replaces that epoch's file in one rename.
    checkpoints.write(folder, _ckpt(4, finished=True))
    assert checkpoints.read(folder / "ckpt-000004.ckpt").finished
    assert len(checkpoints.candidates(folder)) == 2


@pytest.mark.parametrize("damage", ["truncate", "bitflip", "empty", "garbage"])
def test_a_damaged_file_is_refused_with_a_reason(tmp_path: Path, damage: str) -> None:
    path = checkpoints.write(tmp_path, _ckpt(3))
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "bitflip":
        data[len(data) // 2] ^= 0x10
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(os.urandom(len(data)))
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        checkpoints.read(path)


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    from mobiletrain.compute import checkpoints
    folder = Path(sys.argv[1])
    for epoch in (1, 2, 3):
        checkpoints.write(folder, checkpoints.Checkpoint(
            epoch, {"loss": [0.5] * epoch}, False,
            {"model/0": np.full((512, 512), epoch, np.float32)}))
    """
)


def test_sigkill_inside_a_write_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    marker = tmp_path / "paused"
    env = {**os.environ, checkpoints.PAUSE_ENV: str(marker), checkpoints.PAUSE_AT_EPOCH_ENV: "2"}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(folder)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the writer ended without pausing"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert marker.read_text() == "2"
        tmp = [p for p in folder.iterdir() if p.name.startswith(".ckpt-000002")]
        assert len(tmp) == 1 and tmp[0].stat().st_size > 0  # half written, not renamed
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert [p.name for p in checkpoints.candidates(folder)] == ["ckpt-000001.ckpt"]
    assert checkpoints.read(folder / "ckpt-000001.ckpt").epoch == 1
    # The next attempt (the marker exists: no pause) writes over and clears the torn temp file.
    subprocess.run([sys.executable, "-c", _WRITER, str(folder)], env=env, check=True)
    assert sorted(os.listdir(folder)) == ["ckpt-000002.ckpt", "ckpt-000003.ckpt"]


def _project(store: SqlMetadataStore) -> Project:
    return store.create_project(
        Project(
            id=str(uuid.uuid4()),
            name=f"p{uuid.uuid4().hex[:6]}",
            task=TaskType.IMAGE_CLASSIFICATION,
            labels=[],
            labels_fixed=False,
            input_spec=InputSpec(16, 16),
            created_at=datetime.now(UTC),
        )
    )


def test_sweep_removes_the_checkpoints_of_ended_jobs_only(tmp_path: Path) -> None:
    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        project = _project(store)
        jobs_root = tmp_path / "jobs"
        ids: dict[str, str] = {}
        for state in JobState:
            job = store.create_job(
                Job(
                    id=str(uuid.uuid4()),
                    project_id=project.id,
                    state=JobState.QUEUED,
                    hyperparameters=Hyperparameters(epochs=2),
                    created_at=datetime.now(UTC),
                )
            )
            if state is not JobState.QUEUED:
                store.claim_job(job.id)
                if state is not JobState.RUNNING:
                    store.finish_job(job.id, state)
            ids[state.value] = job.id
            checkpoints.write(jobs_root / job.id / checkpoints.CHECKPOINT_DIR, _ckpt(1))
            (jobs_root / job.id / "worker-1.log").write_text("log")
            (jobs_root / job.id / "export-x1y2" / "saved_model").mkdir(parents=True)
        unknown = jobs_root / "no-such-job" / checkpoints.CHECKPOINT_DIR
        checkpoints.write(unknown, _ckpt(1))
        (jobs_root / "ondevice-tmp").mkdir()  # other users of the folder are left alone

        removed = checkpoints.sweep(jobs_root, store)
        assert sorted(removed) == sorted(
            [ids["succeeded"], ids["failed"], ids["cancelled"], "no-such-job"]
        )
        for name, job_id in ids.items():
            has = (jobs_root / job_id / checkpoints.CHECKPOINT_DIR).is_dir()
            assert has == (name in ("queued", "running")), name
            # An export killed half-way leaves its scratch folder: it goes too.
            assert (jobs_root / job_id / "export-x1y2").is_dir() == has, name
            assert (jobs_root / job_id / "worker-1.log").exists()  # logs stay
        assert (jobs_root / "ondevice-tmp").is_dir()
        assert checkpoints.sweep(jobs_root, store) == []
    finally:
        store.close()


# -- Keras layer -----------------------------------------------------------------------------


class _Reporter:
    def __init__(self) -> None:
        self.events: list[tuple[EventKind, dict[str, Any]]] = []

    def emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def should_stop(self) -> bool:
        return False

    def messages(self) -> list[str]:
        return [d["message"] for k, d in self.events if k is EventKind.LOG]


def _tiny_model() -> Any:
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _fit(model: Any, callback: Any, epochs: int, initial_epoch: int = 0) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=64)
    model.fit(
        x,
        y,
        validation_data=(x[:16], y[:16]),
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=[callback],
        verbose=0,
    )


@pytest.mark.slow
def test_keras_state_round_trip_and_fallback(tmp_path: Path) -> None:
    from mobiletrain.compute.keras.checkpoint import EpochCheckpoint, state_arrays

    folder = tmp_path / "checkpoint"
    model = _tiny_model()
    first = EpochCheckpoint(folder, _Reporter())
    _fit(model, first, epochs=3)
    saved = state_arrays(model)
    assert int(model.optimizer.iterations.numpy()) > 0

    # A fresh attempt: weights and optimizer state (Adam moments, step count) come back.
    resumed, reporter = _tiny_model(), _Reporter()
    second = EpochCheckpoint(folder, reporter)
    assert second.restore(resumed) == 3
    for name, array in state_arrays(resumed).items():
        np.testing.assert_array_equal(array, saved[name], err_msg=name)
    assert len(second.history["loss"]) == 3 and len(second.history["val_accuracy"]) == 3
    assert any("3 epochs done" in m for m in reporter.messages())
    _fit(resumed, second, epochs=5, initial_epoch=3)
    assert len(second.history["loss"]) == 5  # every epoch of both attempts
    assert second.history["loss"][:3] == first.history["loss"]

    # The newest file torn: the previous one is used, with a warning naming the file.
    newest = checkpoints.candidates(folder)[0]
    newest.write_bytes(newest.read_bytes()[:100])
    reporter = _Reporter()
    third = EpochCheckpoint(folder, reporter)
    assert third.restore(_tiny_model()) == 4
    warnings = [d for _, d in reporter.events if d.get("level") == "warning"]
    assert len(warnings) == 1 and warnings[0]["checkpoint"] == "ckpt-000005.ckpt"
    assert (folder / "ckpt-000005.ckpt.damaged").exists()
    assert len(third.history["loss"]) == 4

    # Every file damaged (or from another model): epoch 0, never an error.
    for path in checkpoints.candidates(folder):
        path.write_bytes(b"")
    fourth_reporter = _Reporter()
    fourth = EpochCheckpoint(folder, fourth_reporter)
    assert fourth.restore(_tiny_model()) == 0
    assert any("starts again from epoch 1" in m for m in fourth_reporter.messages())


@pytest.mark.slow
def test_a_checkpoint_of_another_model_is_not_half_applied(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    from mobiletrain.compute.keras.checkpoint import EpochCheckpoint, state_arrays

    folder = tmp_path / "checkpoint"
    _fit(_tiny_model(), EpochCheckpoint(folder, _Reporter()), epochs=1)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(4)])
    other.compile(optimizer="adam", loss="mse")
    before = state_arrays(other)
    reporter = _Reporter()
    assert EpochCheckpoint(folder, reporter).restore(other) == 0
    for name, array in state_arrays(other).items():
        np.testing.assert_array_equal(array, before[name])
    assert any("cannot be used" in m for m in reporter.messages())


@pytest.mark.slow
def test_a_failed_checkpoint_write_warns_and_training_goes_on(tmp_path: Path) -> None:
    from mobiletrain.compute.keras.checkpoint import EpochCheckpoint

    blocked = tmp_path / "checkpoint"
    blocked.write_text("a file where the folder should be")  # every write raises OSError
    reporter = _Reporter()
    callback = EpochCheckpoint(blocked, reporter)
    _fit(_tiny_model(), callback, epochs=3)
    assert len(callback.history["loss"]) == 3
    warnings = [m for m in reporter.messages() if "could not write" in m]
    assert len(warnings) == 1  # once, not per epoch


@pytest.mark.slow
def test_train_and_export_resumes_with_the_history_of_every_attempt(
    digits_png: tuple[list[bytes], list[int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOBILETRAIN_CHECKPOINT_INTERVAL_SECONDS", "0")  # every epoch
    from mobiletrain.compute.keras.train import train_and_export
    from mobiletrain.compute.protocol import TrainingRequest
    from mobiletrain.core.types import ColorMode, ModelFormat

    images, labels = digits_png
    request = TrainingRequest(
        images=images[:300],
        labels=labels[:300],
        sample_ids=[f"s{i}" for i in range(300)],
        label_names=[str(d) for d in range(10)],
        input_spec=InputSpec(16, 16, color_mode=ColorMode.GRAYSCALE),
        hyperparameters=Hyperparameters(epochs=4, batch_size=32, formats=[ModelFormat.FLOAT32]),
        work_dir=tmp_path,
    )

    class StopAfter(_Reporter):
        def should_stop(self) -> bool:  # the first attempt ends after two epochs
            return sum(k is EventKind.EPOCH for k, _ in self.events) >= 2

    first = StopAfter()
    assert train_and_export(request, first).cancelled
    assert [d["epoch"] for k, d in first.events if k is EventKind.EPOCH] == [1, 2]

    second = _Reporter()
    out = train_and_export(request, second)
    assert [d["epoch"] for k, d in second.events if k is EventKind.EPOCH] == [3, 4]
    assert any("2 epochs done" in m for m in second.messages())
    assert out.metrics["epochs_run"] == 4
    assert all(len(out.metrics["history"][k]) == 4 for k in ("loss", "val_accuracy"))
    first_losses = [d["loss"] for k, d in first.events if k is EventKind.EPOCH]
    assert out.metrics["history"]["loss"][:2] == first_losses

    # A retry after a crash during export: training is over, straight to the export.
    third = _Reporter()
    again = train_and_export(request, third)
    assert not [d for k, d in third.events if k is EventKind.EPOCH]
    assert any("4 epochs done" in m for m in third.messages())
    assert again.metrics["history"] == out.metrics["history"]
    assert again.metrics["accuracy"] == pytest.approx(out.metrics["accuracy"])


@pytest.mark.slow
def test_a_checkpoint_interval_resumes_from_the_last_checkpoint_taken(tmp_path: Path) -> None:
    """Every 25 s of a clock that advances 10 s per epoch: checkpoints after epochs 3 and 6.

    The attempt is abandoned after epoch 7 (as a killed worker leaves it): the next attempt
    resumes from epoch 6 with the weights and the history of exactly those 6 epochs.
    """
    keras = pytest.importorskip("keras")
    from mobiletrain.compute.keras.checkpoint import EpochCheckpoint, state_arrays

    now = [0.0]
    saved: dict[int, dict[str, np.ndarray]] = {}

    class Clock(keras.callbacks.Callback):  # runs before the checkpoint callback
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            now[0] += 10.0

    class Record(keras.callbacks.Callback):  # runs after it: the state it may have written
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            saved[epoch + 1] = state_arrays(self.model)

    folder = tmp_path / "checkpoint"
    callback = EpochCheckpoint(folder, _Reporter(), interval_s=25.0, clock=lambda: now[0])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=64)
    model = _tiny_model()
    model.fit(x, y, epochs=7, callbacks=[Clock(), callback, Record()], verbose=0)
    assert [p.name for p in checkpoints.candidates(folder)] == [
        "ckpt-000006.ckpt",
        "ckpt-000003.ckpt",
    ]
    assert len(callback.history["loss"]) == 7

    resumed = _tiny_model()
    again = EpochCheckpoint(folder, _Reporter(), interval_s=25.0)
    assert again.restore(resumed) == 6
    for name, array in state_arrays(resumed).items():
        np.testing.assert_array_equal(array, saved[6][name], err_msg=name)
    assert again.history["loss"] == callback.history["loss"][:6]


def test_the_checkpoint_interval_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("keras")
    from mobiletrain.compute.keras.checkpoint import INTERVAL_ENV, interval_from_env

    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    assert interval_from_env() == 30.0
    monkeypatch.setenv(INTERVAL_ENV, "0")
    assert interval_from_env() == 0.0
    for bad in ("-1", "soon", "nan"):
        monkeypatch.setenv(INTERVAL_ENV, bad)
        with pytest.raises(ValueError, match=INTERVAL_ENV):
            interval_from_env()
