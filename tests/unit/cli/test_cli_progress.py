"""The progress bar of ``train --watch`` / ``jobs watch``, folded from real JobEvent messages."""

from __future__ import annotations

from mobiletrain._proto.mobiletrain.v1 import training_pb2
from mobiletrain.cli.jobs import BarState


def _progress(epoch: int, batch: int, eta: float) -> training_pb2.JobEvent:
    return training_pb2.JobEvent(
        progress=training_pb2.Progress(
            epoch=epoch, epochs=2, batch=batch, batches=10, samples_per_second=320,
            job_eta_seconds=eta,
        )
    )  # fmt: skip


def _phase(phase: int) -> training_pb2.JobEvent:
    return training_pb2.JobEvent(phase=training_pb2.PhaseChanged(phase=phase))


def _state(state: int, error: str = "") -> training_pb2.JobEvent:
    return training_pb2.JobEvent(state_changed=training_pb2.StateChanged(state=state, error=error))


def test_training_shows_the_jobs_estimate_and_position() -> None:
    bar = BarState()
    bar.apply(_progress(2, 4, 20.4))
    assert bar.description == "training: epoch 2/2"
    assert (bar.completed, bar.total) == (14, 20)
    assert bar.rate == "320 samples/s, job ends in ~20s"
    assert bar.print_lines == []  # progress only moves the bar


def test_no_stale_estimate_once_training_is_over_or_the_job_has_ended() -> None:
    bar = BarState()
    bar.apply(_progress(2, 9, 20.0))
    bar.apply(_phase(training_pb2.JOB_PHASE_EXPORTING))
    assert bar.description == "exporting" and "ends in" not in bar.rate
    bar.apply(_state(training_pb2.JOB_STATE_SUCCEEDED))
    assert bar.description == "succeeded" and bar.rate == ""
    assert bar.completed == bar.total == 20  # a finished job shows a full bar
    assert bar.print_lines == ["phase: exporting", "state: succeeded"]


def test_a_failed_job_keeps_its_position_and_says_why() -> None:
    bar = BarState()
    bar.apply(_progress(1, 3, 50.0))
    bar.apply(_state(training_pb2.JOB_STATE_FAILED, "out of memory"))
    assert bar.description == "failed" and bar.rate == ""
    assert bar.completed == 3
    assert bar.print_lines == ["state: failed (out of memory)"]


def test_a_running_state_keeps_the_estimate() -> None:
    bar = BarState()
    bar.apply(_progress(1, 3, 50.0))
    bar.apply(_state(training_pb2.JOB_STATE_RUNNING))
    assert "job ends in ~50s" in bar.rate


def test_reading_the_samples_counts_samples_not_epochs() -> None:
    bar = BarState()
    reading = training_pb2.Progress(
        phase=training_pb2.JOB_PHASE_PREPARING_DATA, epoch=0, batch=40, batches=157,
        samples_per_second=80,
    )  # fmt: skip
    bar.apply(training_pb2.JobEvent(progress=reading))
    assert bar.description == "preparing data"
    assert (bar.completed, bar.total) == (40, 157)
    assert bar.rate == "80 samples/s read"
    bar.apply(_progress(1, 1, 30.0))  # training starts: the bar spans the job's batches again
    assert (bar.completed, bar.total) == (1, 20) and "job ends in ~30s" in bar.rate
