"""LiteRTPredictor (server-side Predict) on an audio model: a WAV longer than the clip is
split as training splits it and the clips' probabilities are averaged, the same figures the
release gate gets from ``litert.predict_samples``; a loaded model is cached by its key.

Real TensorFlow builds and converts a tiny model (width 8), real LiteRT runs it.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from mobiletrain.compute.keras.export import export, write_saved_model
from mobiletrain.compute.keras.tasks.audio import build_model
from mobiletrain.compute.litert import LiteRTClassifier, predict_samples
from mobiletrain.compute.predictor import LiteRTPredictor
from mobiletrain.core.types import AudioSpec, InputSpec, LongClips, ModelFormat
from mobiletrain.tasks.audio_codec import encode_wav

RATE = 16000


def test_audio_sample_is_split_into_clips_and_averaged(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = build_model(RATE, RATE, 3, width=8, blocks=2)
    tflite = export(
        model,
        ModelFormat.FLOAT32,
        np.zeros((0, RATE), np.float32),
        write_saved_model(model, tmp_path / "sm"),
    )
    spec = InputSpec(
        task_spec=AudioSpec(sample_rate_hz=RATE, clip_ms=1000, long_clips=LongClips.SPLIT)
    )
    t = np.arange(2 * RATE) / RATE
    # Two different seconds: a low tone, then a high one, so the two clips score apart.
    wave = np.where(t < 1, 0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 1760 * t))
    wav = encode_wav(wave, RATE)
    loads: list[int] = []

    def load() -> bytes:
        loads.append(1)
        return tflite

    predictor = LiteRTPredictor()
    probs = predictor.predict("audio-v1", load, spec, wav)
    first = LiteRTClassifier(tflite).predict(wave[None, :RATE].astype(np.float32))
    second = LiteRTClassifier(tflite).predict(wave[None, RATE:].astype(np.float32))
    assert not np.allclose(first[0], second[0], atol=1e-4)  # averaging is visible
    np.testing.assert_allclose(probs, (first[0] + second[0]) / 2, atol=1e-4)
    np.testing.assert_allclose(probs, predict_samples(tflite, spec, [wav])[0], atol=1e-6)
    assert predictor.predict("audio-v1", load, spec, wav) == probs and len(loads) == 1
