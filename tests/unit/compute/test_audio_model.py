"""The audio task's TensorFlow half: log-mel front end in the model, exports, augmentation.

Real TensorFlow, real TFLite converter, real LiteRT interpreter (the runtime tflite_flutter
wraps). Models are tiny (width 8) so conversions take seconds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from mobiletrain.compute.keras.export import export, export_keras, write_saved_model
from mobiletrain.compute.keras.tasks import keras_task
from mobiletrain.compute.keras.tasks.audio import (
    MEL_BANDS,
    AugmentConfig,
    FrontEnd,
    build_model,
    export_int8,
    make_augment,
)
from mobiletrain.compute.litert import custom_op_names
from mobiletrain.compute.protocol import TrainingRequest
from mobiletrain.core.types import AudioSpec, Hyperparameters, InputSpec, ModelFormat, TaskType
from mobiletrain.tasks.audio_codec import encode_wav

RATE = 16000


def _ops(model: bytes) -> list[tuple[str, list[str], list[str]]]:
    """(op name, input dtypes, output dtypes) of every op, in execution order."""
    interpreter = Interpreter(model_content=model)
    dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    return [
        (
            op["op_name"],
            [dtypes[i] for i in op["inputs"] if i >= 0],
            [dtypes[o] for o in op["outputs"]],
        )
        for op in interpreter._get_ops_details()
    ]


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert inp["dtype"] == np.float32 and list(inp["shape"]) == [1, x.shape[1]]
    rows = []
    for row in x:
        interpreter.set_tensor(inp["index"], row[None].astype(np.float32))
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out["index"])[0])
    return np.stack(rows)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[keras.Model, Path]:
    keras.utils.set_random_seed(0)
    model = build_model(RATE, RATE, 3, width=8, blocks=2)
    return model, write_saved_model(model, tmp_path_factory.mktemp("audio") / "sm")


def _speechlike(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(RATE) / RATE
    out = np.zeros((n, RATE), np.float32)
    for i in range(n):
        f = rng.uniform(200, 3000)
        env = np.exp(-(((t - rng.uniform(0.2, 0.8)) / 0.1) ** 2))
        out[i] = rng.uniform(0.01, 0.5) * env * np.sin(2 * np.pi * f * t)
        out[i] += 0.003 * rng.standard_normal(RATE)
    return out


@pytest.mark.parametrize(
    ("fmt", "atol"),
    [(ModelFormat.FLOAT32, 1e-4), (ModelFormat.FLOAT16, 5e-3), (ModelFormat.DYNAMIC_INT8, 0.05)],
)
def test_front_end_converts_to_builtins_and_matches_keras(
    saved: tuple[keras.Model, Path], fmt: ModelFormat, atol: float
) -> None:
    model, path = saved
    tflite = export(model, fmt, np.zeros((0, RATE), np.float32), path)
    assert custom_op_names(tflite) == []
    names = {name for name, _, _ in _ops(tflite)}
    assert {"RFFT2D", "COMPLEX_ABS", "LOG"} <= names
    x = _speechlike(4, 1)
    np.testing.assert_allclose(_run(tflite, x), model.predict(x, verbose=0), atol=atol)


def test_log_mel_puts_a_tone_in_its_mel_band() -> None:
    front = FrontEnd(RATE, RATE)
    layer = build_model(RATE, RATE, 2, width=8, blocks=1).get_layer("log_mel")
    mel = tf.signal.linear_to_mel_weight_matrix(
        MEL_BANDS, front.fft_length // 2 + 1, RATE, 20.0, front.upper_hz
    ).numpy()
    for hz in (300.0, 1000.0, 4000.0):
        tone = np.sin(2 * np.pi * hz * np.arange(RATE) / RATE).astype(np.float32)[None]
        feats = np.asarray(layer(tone))[0, :, :, 0]
        assert feats.shape == (front.frames, MEL_BANDS) == (49, 40)
        fft_bin = round(hz * front.fft_length / RATE)
        # The loudest band is the tone's (or its neighbour: the Hann window leaks one bin).
        assert abs(int(feats.mean(axis=0).argmax()) - int(mel[fft_bin].argmax())) <= 1
        assert feats.mean(axis=0).max() - np.median(feats.mean(axis=0)) > 10  # log units


def test_keras_file_reloads_with_the_front_end(saved: tuple[keras.Model, Path]) -> None:
    model, _ = saved
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.keras"
        path.write_bytes(export_keras(model))
        loaded = keras.models.load_model(path)
    x = _speechlike(2, 2)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.slow
def test_int8_keeps_the_front_end_float_and_quantises_the_network(
    saved: tuple[keras.Model, Path],
) -> None:
    model, path = saved
    tflite = export_int8(path, _speechlike(32, 3))
    ops = _ops(tflite)
    by_name = {name: (ins, outs) for name, ins, outs in ops}
    assert by_name["RFFT2D"][0][0] == "float32"
    assert by_name["LOG"][1] == ["float32"]
    assert by_name["CONV_2D"][0][:2] == ["int8", "int8"]
    assert by_name["DEPTHWISE_CONV_2D"][0][:2] == ["int8", "int8"]
    assert [name for name, _, _ in ops].count("QUANTIZE") == 1
    x = _speechlike(8, 4)
    float_probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(_run(tflite, x), float_probs, atol=0.05)


def test_augmentation_shifts_scales_and_mixes_noise() -> None:
    clip = np.zeros((1, RATE), np.float32)
    clip[0, 8000:8100] = 0.5
    quiet = make_augment(RATE, RATE, None, AugmentConfig(max_shift_ms=100, gain_db=6.0), seed=1)
    out = np.asarray(quiet(tf.constant(np.repeat(clip, 64, axis=0))))
    starts = np.argmax(out != 0, axis=1)
    assert np.abs(starts - 8000).max() <= 1600 and len(set(starts.tolist())) > 10
    peaks = np.abs(out).max(axis=1)
    assert (
        peaks.min() >= 0.5 * 10 ** (-6 / 20) - 1e-4 and peaks.max() <= 0.5 * 10 ** (6 / 20) + 1e-4
    )
    noise = np.random.default_rng(0).uniform(-1, 1, (3, RATE)).astype(np.float32)
    noisy = make_augment(
        RATE, RATE, noise, AugmentConfig(background_probability=1.0, background_volume=0.1), seed=2
    )
    mixed = np.asarray(noisy(tf.constant(np.zeros((32, RATE), np.float32))))
    level = np.abs(mixed).max(axis=1)
    assert (level > 0).all() and level.max() <= 0.1 + 1e-6
    assert np.abs(mixed).max() <= 1.0


def test_background_noise_is_kept_out_of_the_classes(tmp_path: Path) -> None:
    task = keras_task(TaskType.AUDIO_CLASSIFICATION)
    tone = encode_wav(0.3 * np.sin(np.arange(RATE) / 5.0), RATE)
    hiss = encode_wav(0.1 * np.random.default_rng(0).uniform(-1, 1, RATE), RATE)
    request = TrainingRequest(
        images=[tone, hiss, tone, hiss],
        labels=[0, 1, 2, 1],
        sample_ids=["a", "n1", "b", "n2"],
        label_names=["go", "_background_noise_", "stop"],
        input_spec=InputSpec(task_spec=AudioSpec()),
        hyperparameters=Hyperparameters(),
        work_dir=tmp_path,
    )
    data = task.prepare(request)
    assert data.label_names == ["go", "stop"]
    assert data.y.tolist() == [0, 1] and data.owner.tolist() == [0, 2]
    assert data.x.shape == (2, RATE) and data.extras["noise"].shape == (2, RATE)
