"""The audio task through the real trainer: synthesised keywords in, LiteRT on unseen voices out.

No server: the request is what the worker receives (WAV bytes, labels, the project's spec),
``train_and_export`` is the worker's entry point. The float32 and int8 files it returns are
run in LiteRT on voices the model never heard. ``tests/e2e/test_audio_loop.py`` does the same
through a real server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mobiletrain.compute.keras.train import train_and_export
from mobiletrain.compute.litert import read_embedded_manifest
from mobiletrain.compute.protocol import TrainingRequest
from mobiletrain.core.types import AudioSpec, EventKind, Hyperparameters, InputSpec, ModelFormat
from mobiletrain.tasks.audio import BACKGROUND_LABEL
from mobiletrain.tasks.audio_synth import espeak_available, litert_accuracy, make_speech_dataset

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed"),
]


class _Reporter:
    def __init__(self) -> None:
        self.events: list[tuple[EventKind, dict[str, Any]]] = []

    def emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def should_stop(self) -> bool:
        return False


def test_keywords_train_and_export_to_litert(tmp_path: Path) -> None:
    data = make_speech_dataset(tmp_path / "speech", train_voices=16, held_out_voices=8)
    files = sorted(data.train_dir.glob("*/*.wav"))
    label_names = [*data.words, BACKGROUND_LABEL]
    request = TrainingRequest(
        images=[p.read_bytes() for p in files],
        labels=[label_names.index(p.parent.name) for p in files],
        sample_ids=[f"{p.parent.name}/{p.name}" for p in files],
        label_names=label_names,
        input_spec=InputSpec(task_spec=AudioSpec()),
        hyperparameters=Hyperparameters(
            epochs=20,
            learning_rate=5e-3,
            seed=7,
            formats=[ModelFormat.KERAS, ModelFormat.FLOAT32, ModelFormat.INT8],
        ),
        work_dir=tmp_path / "job",
    )
    reporter = _Reporter()
    out = train_and_export(request, reporter)
    assert not out.cancelled
    # Background noise is mixed into training clips, never predicted.
    assert out.manifest["labels"] == list(data.words)
    accuracy = {
        fmt: litert_accuracy(out.artifacts[fmt], data.words, data.held_out_dir)
        for fmt in (ModelFormat.FLOAT32, ModelFormat.INT8)
    }
    print(f"held-out voices: {accuracy}, trainer metrics: {out.metrics['tflite']}")
    assert accuracy[ModelFormat.FLOAT32] >= 0.85, accuracy
    assert accuracy[ModelFormat.INT8] >= accuracy[ModelFormat.FLOAT32] - 0.05, accuracy
    embedded = read_embedded_manifest(out.artifacts[ModelFormat.INT8])
    assert embedded is not None
    assert embedded["input"]["shape"] == [1, 16000]
    [pcm] = embedded["inputs"]
    assert (pcm["layout"], pcm["role"], pcm["rate_hz"], pcm["length"]) == (
        "NT",
        "waveform",
        16000,
        16000,
    )
    assert embedded["task_spec"]["front_end"]["type"] == "log_mel"
    assert embedded["task_spec"]["formats"]["int8"]["network"] == "int8"
    logs = [d.get("message", "") for k, d in reporter.events if k is EventKind.LOG]
    assert any("background-noise clips for mixing" in m for m in logs), logs
    assert np.isfinite(out.metrics["accuracy"])
