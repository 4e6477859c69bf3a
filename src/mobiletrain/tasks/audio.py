"""Audio classification: WAV clips of a project's rate and length (keyword spotting, sounds).

A sample is one WAV file (PCM 8/16/24/32-bit integer or 32/64-bit float, plain or
``WAVE_FORMAT_EXTENSIBLE``, any channel count up to 8; see :mod:`.audio_codec`). It is
validated from its header at upload (structure, data length, rate, duration, clip policy),
and decoded by the trainer to mono float32 at the project's rate, cut to the project's clip
length: shorter clips are zero-padded at the end; longer ones are refused at upload
(``long_clips=reject``, AUDIO_TOO_LONG) or cut into consecutive clips (``split``).

Samples labelled ``_background_noise_`` (:data:`BACKGROUND_LABEL`) are not a class: the trainer
mixes random windows of them into the training clips, as the speech-commands recipe does.

The model takes float32 PCM ``[1, clip_samples]`` in ``-1..1``; its log-mel front end runs
inside the model, so the app only records, converts to float and pads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import CLASSIFIER_FORMATS, AudioSpec, InputSpec, ModelFormat, TaskType
from mobiletrain.core.validation import Limits
from mobiletrain.tasks.audio_codec import AudioLimits, decode_clips, validate_wav
from mobiletrain.tasks.base import SampleInfo, check_size

BACKGROUND_LABEL = "_background_noise_"
"""Reserved label: noise clips mixed into training examples, never predicted."""
WAV_MEDIA_TYPE = "audio/wav"


AUDIO_LIMITS = AudioLimits()
"""Bounds on any uploaded WAV: up to 30 s (longer files only make sense when split), 4..192 kHz."""


class AudioClassification:
    """The audio kind (see :class:`mobiletrain.tasks.base.TaskKind`)."""

    task = TaskType.AUDIO_CLASSIFICATION
    short_name = "audio"
    sample_extensions: tuple[str, ...] = (".wav",)
    client_resizes = False  # WAVs go up as recorded; the server resamples
    # Labels that are not classes: noise for augmentation, never predicted or scored.
    reserved_labels: frozenset[str] = frozenset({BACKGROUND_LABEL})
    media_types: tuple[str, ...] = (WAV_MEDIA_TYPE,)
    # The whole-classifier formats; the on-device training files assume an image backbone.
    export_formats: tuple[ModelFormat, ...] = CLASSIFIER_FORMATS

    def default_spec(self) -> InputSpec:
        """16 kHz mono, 1 s clips, longer clips refused."""
        return InputSpec(task_spec=AudioSpec())

    def check_spec(self, spec: InputSpec) -> InputSpec:
        """The spec must carry an :class:`AudioSpec` (filled with the defaults if absent)."""
        if spec.task_spec is None:
            spec = InputSpec(task_spec=AudioSpec())
        if not isinstance(spec.task_spec, AudioSpec):
            raise MobiletrainError(
                ErrorCode.WRONG_TASK_SPEC,
                f"an audio-classification project takes audio settings, not {spec.task.value}",
            )
        spec.task_spec.validate()
        return spec

    def validate_sample(self, data: bytes, spec: InputSpec, limits: Limits) -> SampleInfo:
        """Header and lengths, rate, duration and the clip policy, without decoding samples."""
        check_size(data, limits)
        audio = _audio_spec(spec)
        info = validate_wav(data, audio, AUDIO_LIMITS)
        return SampleInfo(media_type=WAV_MEDIA_TYPE, width=info.frames, height=info.channels)

    def decode_examples(self, data: bytes, spec: InputSpec) -> np.ndarray:
        """float32 clips ``(k, clip_samples)``: mono, resampled, padded (``k > 1`` if split)."""
        audio = _audio_spec(spec)
        return decode_clips(data, audio, AUDIO_LIMITS)

    def model_input(self, examples: np.ndarray, spec: InputSpec) -> np.ndarray:
        """Raw PCM: the model computes its features itself."""
        return np.asarray(examples, dtype=np.float32)

    def manifest_input(self, spec: InputSpec) -> dict[str, Any]:
        """float32 ``[1, clip_samples]`` mono PCM in -1..1 at the project's rate."""
        audio = _audio_spec(spec)
        return {
            "kind": "audio-waveform",
            "dtype": "float32",
            "shape": [1, audio.clip_samples],
            "layout": "batch, sample",
            "sample_rate_hz": audio.sample_rate_hz,
            "clip_samples": audio.clip_samples,
            "clip_ms": audio.clip_ms,
            "channels": 1,
            "long_clips": audio.long_clips.value,
            "values": "mono PCM as float32 in -1..1 (int16 / 32768); average the channels of "
            "stereo input; the log-mel front end runs inside the model",
            "padding": "zeros at the end of clips shorter than clip_samples",
            "background_label": BACKGROUND_LABEL,
        }


def _audio_spec(spec: InputSpec) -> AudioSpec:
    if not isinstance(spec.task_spec, AudioSpec):
        raise MobiletrainError(ErrorCode.WRONG_TASK_SPEC, "the project has no audio settings")
    return spec.task_spec


KIND = AudioClassification()
