"""Keyword-spotting model for audio classification: log-mel front end inside the model.

The exported model takes float32 mono PCM ``[1, clip_samples]`` in ``[-1, 1]`` at the project's
rate (the app records 16 kHz mono, converts int16 to float by ``/ 32768`` and zero-pads the end)
and returns softmax probabilities. Everything between is in the graph, so the app cannot get
the features wrong:

    PCM -> STFT (Hann, 30 ms frames, 20 ms hop, 512-point RFFT) -> power -> 40 mel bands
        (20 Hz .. 7.6 kHz) -> log(mel + 1e-6) -> BatchNorm -> DS-CNN -> softmax

The TFLite converter emits only builtins for this front end (``RFFT2D``, ``COMPLEX_ABS``,
``SQUARE``, ``GATHER``/``PAD`` for framing, ``FULLY_CONNECTED`` for the mel matrix, ``LOG``);
see ``tests/unit/compute/test_audio_model.py``. In the full-integer (``int8``) export the front
end stays float (RFFT2D and COMPLEX_ABS have no integer kernels, and 8-bit PCM input would
throw away most of a quiet recording's resolution): input and output are float32, the
network after the front end is int8. The manifest says so (:func:`describe_export`).

The DS-CNN follows "Hello Edge" (Zhang et al., 2017): one strided conv, then depthwise-separable
blocks, global average pooling, a dense softmax head. Augmentation (time shift, gain, mixing
background noise from ``_background_noise_`` clips at random volume, as the speech-commands
recipe does) runs in the tf.data pipeline on waveforms, never in the exported model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mobiletrain.compute.keras.tasks.base import BatchMap, KerasTaskBase, TaskData
from mobiletrain.compute.protocol import Reporter, TrainingRequest
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.manifest import TensorSpec
from mobiletrain.core.types import (
    TFLITE_FORMATS,
    Architecture,
    AudioSpec,
    EventKind,
    ModelFormat,
    TaskType,
)
from mobiletrain.tasks.audio import BACKGROUND_LABEL

# Front-end constants (at 16 kHz: 480-sample frames, 320-sample hop, 49 frames per second).
FRAME_MS = 30
HOP_MS = 20
MEL_BANDS = 40
LOWER_HZ = 20.0
UPPER_HZ = 7600.0
LOG_OFFSET = 1e-6
FRONT_END_LAYER = "log_mel"
_BN_MOMENTUM = 0.9  # small data sets: let BatchNorm statistics follow within a few epochs


@dataclass(frozen=True)
class FrontEnd:
    """Framing of the log-mel front end for one sample rate and clip length."""

    sample_rate_hz: int
    clip_samples: int

    @property
    def frame_length(self) -> int:
        """Samples per STFT frame."""
        return self.sample_rate_hz * FRAME_MS // 1000

    @property
    def hop(self) -> int:
        """Samples between frame starts."""
        return self.sample_rate_hz * HOP_MS // 1000

    @property
    def fft_length(self) -> int:
        """Smallest power of two holding a frame."""
        return 1 << (self.frame_length - 1).bit_length()

    @property
    def frames(self) -> int:
        """Frames per clip (no end padding: every frame is real audio)."""
        return 1 + (self.clip_samples - self.frame_length) // self.hop

    @property
    def upper_hz(self) -> float:
        """Top mel edge, below the Nyquist frequency of low sample rates."""
        return min(UPPER_HZ, 0.475 * self.sample_rate_hz)

    def describe(self) -> dict[str, Any]:
        """The manifest's description of the in-model preprocessing."""
        return {
            "type": "log_mel",
            "frame_length": self.frame_length,
            "frame_step": self.hop,
            "fft_length": self.fft_length,
            "window": "hann",
            "mel_bands": MEL_BANDS,
            "lower_hz": LOWER_HZ,
            "upper_hz": self.upper_hz,
            "log_offset": LOG_OFFSET,
            "frames": self.frames,
        }


@keras.saving.register_keras_serializable(package="mobiletrain")
class LogMelSpectrogram(keras.layers.Layer):
    """``(batch, samples)`` float PCM -> ``(batch, frames, mel_bands, 1)`` log-mel energies."""

    def __init__(self, sample_rate_hz: int, clip_samples: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.front = FrontEnd(sample_rate_hz, clip_samples)
        if self.front.frames < 3:
            raise ValueError(f"a clip of {clip_samples} samples is too short for the front end")
        self._mel = tf.signal.linear_to_mel_weight_matrix(
            MEL_BANDS,
            self.front.fft_length // 2 + 1,
            sample_rate_hz,
            LOWER_HZ,
            self.front.upper_hz,
        )

    def call(self, pcm: Any) -> Any:
        """Compute log-mel energies with ops that convert to TFLite builtins."""
        f = self.front
        spectrum = tf.signal.stft(
            pcm, f.frame_length, f.hop, f.fft_length, window_fn=tf.signal.hann_window
        )
        power = tf.math.square(tf.abs(spectrum))
        mel = tf.matmul(power, self._mel)
        return tf.expand_dims(tf.math.log(mel + LOG_OFFSET), -1)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        """Static output shape for the functional API."""
        return (input_shape[0], self.front.frames, MEL_BANDS, 1)

    def get_config(self) -> dict[str, Any]:
        """Config so ``.keras`` files reload the layer."""
        return {
            **super().get_config(),
            "sample_rate_hz": self.front.sample_rate_hz,
            "clip_samples": self.front.clip_samples,
        }


def build_model(
    sample_rate_hz: int,
    clip_samples: int,
    num_classes: int,
    width: int = 64,
    blocks: int = 4,
    dropout: float = 0.2,
) -> keras.Model:
    """DS-CNN keyword spotter over the in-model log-mel front end (~25k weights at width 64)."""
    pcm = keras.Input((clip_samples,), name="pcm", dtype="float32")
    x = LogMelSpectrogram(sample_rate_hz, clip_samples, name=FRONT_END_LAYER)(pcm)
    # Learned per-band normalisation: log energies have arbitrary offsets per recording chain.
    x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, name="feature_norm")(x)
    x = keras.layers.Conv2D(width, (10, 4), strides=(2, 2), padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM)(x)
    x = keras.layers.ReLU()(x)
    for _ in range(blocks):
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM)(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.Conv2D(width, 1, use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM)(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    out = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(pcm, out, name="ds_cnn_kws")


@dataclass(frozen=True)
class AugmentConfig:
    """Speech-commands style augmentation settings (``None`` background: no mixing)."""

    max_shift_ms: int = 100
    gain_db: float = 6.0
    background_probability: float = 0.8
    background_volume: float = 0.1


def make_augment(
    sample_rate_hz: int,
    clip_samples: int,
    background: np.ndarray | None,
    config: AugmentConfig = AugmentConfig(),
    seed: int = 0,
) -> Callable[[tf.Tensor], tf.Tensor]:
    """Return ``augment(batch)`` for ``(batch, clip_samples)`` float32 waveforms (tf.data map).

    Per example: a random time shift of up to ``max_shift_ms`` (zero fill, no wrap-around), a
    random gain of up to ``+-gain_db``, and with ``background_probability`` a random window of a
    random background clip at a uniform random volume up to ``background_volume``. The result is
    clipped to ``[-1, 1]`` as a real recording would be.
    """
    shift = sample_rate_hz * config.max_shift_ms // 1000
    generator = tf.random.Generator.from_seed(seed)
    noise = None
    if background is not None and len(background):
        noise = tf.constant(np.asarray(background, dtype=np.float32).reshape(-1))
    noise_len = 0 if noise is None else int(noise.shape[0])

    def augment(batch: tf.Tensor) -> tf.Tensor:
        n = tf.shape(batch)[0]
        padded = tf.pad(batch, [[0, 0], [shift, shift]])
        offsets = generator.uniform([n], 0, 2 * shift + 1, dtype=tf.int32)
        index = offsets[:, None] + tf.range(clip_samples)[None, :]
        x = tf.gather(padded, index, batch_dims=1)
        gain = tf.pow(10.0, generator.uniform([n, 1], -config.gain_db, config.gain_db) / 20.0)
        x = x * gain
        if noise is not None and noise_len > clip_samples:
            starts = generator.uniform([n], 0, noise_len - clip_samples, dtype=tf.int32)
            windows = tf.gather(noise, starts[:, None] + tf.range(clip_samples)[None, :])
            volume = generator.uniform([n, 1], 0.0, config.background_volume)
            mix = tf.cast(generator.uniform([n, 1]) < config.background_probability, tf.float32)
            x = x + windows * volume * mix
        return tf.clip_by_value(x, -1.0, 1.0)

    return augment


def _representative(waveforms: np.ndarray, limit: int) -> Callable[[], Iterator[list[np.ndarray]]]:
    def generate() -> Iterator[list[np.ndarray]]:
        for i in range(min(len(waveforms), limit)):
            yield [waveforms[i : i + 1].astype(np.float32)]

    return generate


def front_end_nodes(float_tflite: bytes) -> list[str]:
    """Output tensor names of the log-mel front end's ops in a converted model."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=float_tflite)
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    return sorted(
        {
            names[o]
            for op in interpreter._get_ops_details()  # the only op listing LiteRT has
            for o in op["outputs"]
            if f"/{FRONT_END_LAYER}" in names[o]
        }
    )


def export_int8(saved_model_dir: Path, representative: np.ndarray, limit: int = 200) -> bytes:
    """Full-integer network behind a float32 log-mel front end; float32 input and output.

    Plain full-integer conversion quantises the PCM input to 8 bits and the power spectrum
    before the log (its dynamic range is ~80 dB): the model then hears only loud sounds (held-out
    accuracy fell to chance in our test). So the front end's ops (framing, window, RFFT2D,
    COMPLEX_ABS, mel matrix, LOG) are deny-listed for quantisation (selective quantisation via
    ``tf.lite.experimental.QuantizationDebugger``): they run in float32, the converter puts one
    QUANTIZE after them, every conv/dense op runs in int8, and a DEQUANTIZE gives float output.
    Calibrated on training waveforms.
    """
    if len(representative) == 0:
        raise ValueError("int8 export needs representative waveforms")
    float_converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    float_converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    deny = front_end_nodes(bytes(float_converter.convert()))
    if not deny:
        raise ValueError("the model has no log-mel front end to keep in float")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(representative, limit)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=_representative(representative, 1),
        debug_options=tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=deny, fully_quantize=False
        ),
    )
    return bytes(debugger.get_nondebug_quantized_model())


def describe_export(fmt: str) -> dict[str, Any]:
    """Manifest note on the numeric types per format: what runs in float, what in int8."""
    if fmt == "int8":
        return {
            "input_dtype": "float32",
            "output_dtype": "float32",
            "front_end": "float32",
            "network": "int8",
            "note": "RFFT2D/COMPLEX_ABS/LOG have no integer kernels: the log-mel front end "
            "runs in float32, the network after it in int8",
        }
    return {"input_dtype": "float32", "output_dtype": "float32", "front_end": "float32"}


# --- trainer hooks ------------------------------------------------------------------------


def _audio_spec(request: TrainingRequest) -> AudioSpec:
    spec = request.input_spec.task_spec
    if not isinstance(spec, AudioSpec):
        raise MobiletrainError(ErrorCode.WRONG_TASK_SPEC, "the project has no audio settings")
    return spec


class AudioTask(KerasTaskBase):
    """Hooks of audio classification (see :class:`KerasTaskBase`)."""

    task = TaskType.AUDIO_CLASSIFICATION
    width = 48  # DS-CNN channels: 64 in "Hello Edge"; 48 trains ~1.5x faster at equal accuracy here

    def prepare(self, request: TrainingRequest) -> TaskData:
        """Decode every WAV to clips; ``_background_noise_`` clips become ``extras["noise"]``."""
        data = super().prepare(request)
        if BACKGROUND_LABEL not in data.label_names:
            return data
        noise_index = data.label_names.index(BACKGROUND_LABEL)
        is_noise = data.y == noise_index
        keep = ~is_noise
        # Classes keep their order; indices above the reserved one shift down by one.
        y = data.y[keep]
        y = np.where(y > noise_index, y - 1, y)
        names = [n for n in data.label_names if n != BACKGROUND_LABEL]
        if not names:
            raise MobiletrainError(
                ErrorCode.NOT_ENOUGH_DATA,
                f"only {BACKGROUND_LABEL} samples: background noise is not a class",
            )
        return TaskData(
            x=data.x[keep],
            y=y,
            owner=data.owner[keep],
            label_names=names,
            extras={**data.extras, "noise": data.x[is_noise]},
        )

    def build_model(
        self, request: TrainingRequest, data: TaskData, train_rows: np.ndarray, reporter: Reporter
    ) -> keras.Model:
        """The DS-CNN keyword spotter (``small-cnn``, the default architecture, selects it)."""
        hp = request.hyperparameters
        if hp.architecture is not Architecture.SMALL_CNN:
            raise MobiletrainError(
                ErrorCode.INVALID_HYPERPARAMETERS,
                f"audio classification trains its own DS-CNN; architecture "
                f"{hp.architecture.value!r} is for images (use {Architecture.SMALL_CNN.value!r})",
            )
        spec = _audio_spec(request)
        noise = data.extras.get("noise")
        reporter.emit(
            EventKind.LOG,
            {
                "message": f"DS-CNN on {MEL_BANDS} log-mel bands of {spec.clip_samples}-sample"
                f" clips; {0 if noise is None else len(noise)} background-noise clips for mixing"
            },
        )
        return build_model(
            spec.sample_rate_hz,
            spec.clip_samples,
            len(data.label_names),
            width=self.width,
            dropout=hp.dropout,
        )

    def batch_map(self, request: TrainingRequest, data: TaskData, training: bool) -> BatchMap:
        """Waveforms as they are; when training: shift, gain and background mixing."""
        if not training:
            return lambda x: tf.cast(x, tf.float32)
        spec = _audio_spec(request)
        augment = make_augment(
            spec.sample_rate_hz,
            spec.clip_samples,
            data.extras.get("noise"),
            seed=request.hyperparameters.seed,
        )
        return lambda x: augment(tf.cast(x, tf.float32))

    def export(
        self,
        model: keras.Model,
        fmt: ModelFormat,
        representative: np.ndarray,
        saved_model_dir: Path,
    ) -> bytes:
        """Shared exporters; int8 keeps the front end float (see :func:`export_int8`)."""
        if fmt is not ModelFormat.INT8:
            return super().export(model, fmt, representative, saved_model_dir)
        try:
            return export_int8(saved_model_dir, representative)
        except Exception as exc:  # converter errors are long MLIR dumps
            raise MobiletrainError(
                ErrorCode.INTERNAL, "the model could not be exported as int8"
            ) from exc

    def manifest_inputs(self, request: TrainingRequest, model: keras.Model) -> list[TensorSpec]:
        """One clip: float32 mono PCM ``[1, clip_samples]`` in -1..1 at the project's rate."""
        spec = _audio_spec(request)
        return [
            TensorSpec(
                name="pcm",
                dtype="float32",
                shape=[1, spec.clip_samples],
                layout="NT",
                role="waveform",
                channels=["mono"],
                rate_hz=float(spec.sample_rate_hz),
                length=spec.clip_samples,
                value_range=(-1.0, 1.0),
                description="mono PCM as float32 (int16 / 32768; average stereo channels), "
                "zero-padded at the end to length; the log-mel front end runs inside the model",
            )
        ]

    def manifest_task_spec(self, request: TrainingRequest, model: keras.Model) -> dict[str, Any]:
        """The in-model front end's parameters and, per format, what runs in float or int8."""
        spec = _audio_spec(request)
        return {
            "front_end": FrontEnd(spec.sample_rate_hz, spec.clip_samples).describe(),
            "formats": {fmt.value: describe_export(fmt.value) for fmt in TFLITE_FORMATS},
            "background_label": BACKGROUND_LABEL,
        }


TASK = AudioTask()
