"""When the trainer streams a job's samples instead of decoding them all into memory (issue 18).

TensorFlow free: the worker decides before it reads any bytes. In memory, the worker holds every
sample's bytes, their decoded arrays and TensorFlow's copy (about 200 KB per 128x128 RGB photo),
so memory grows with the dataset; streamed, it holds only the digests and reads, decodes and
feeds the samples batch by batch inside ``tf.data`` (``compute/keras/train.py``), so peak memory
stays flat however many samples the project has.

Settings (environment of the server, inherited by its workers):

* ``MOBILETRAIN_TRAIN_STREAMING``: ``auto`` (default) streams when the decoded training set
  would exceed ``MOBILETRAIN_TRAIN_STREAM_ABOVE_MB`` (default 512); ``always``; ``never``.
* ``MOBILETRAIN_TRAIN_CACHE``: ``disk`` keeps the decoded examples of a streamed job in a file
  in the job's scratch folder after the first epoch (removed when training ends), so later
  epochs skip reading and decoding; ``none`` (default) decodes every epoch.

Only kinds with one fixed-shape example per sample and no statistics learned from the whole
training set stream (image classification); audio and sensor jobs stay in memory (their model
builders compute normalisation statistics and noise sets from every training example).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import InputSpec, TaskType

STREAMING_KINDS = frozenset({TaskType.IMAGE_CLASSIFICATION})
"""Task kinds whose Keras hooks can decode samples batch by batch (``decode_many``)."""

DEFAULT_STREAM_ABOVE_MB = 512.0
_MODES = ("auto", "always", "never")
_CACHES = ("none", "disk")


@dataclass(frozen=True)
class StreamPlan:
    """How one job's data reaches the model."""

    stream: bool
    disk_cache: bool = False


def decoded_bytes_per_sample(spec: InputSpec) -> int:
    """Bytes one decoded example takes (uint8 pixels)."""
    return spec.width * spec.height * spec.channels


def plan(spec: InputSpec, num_samples: int, environ: Mapping[str, str] | None = None) -> StreamPlan:
    """Stream or not for a job of ``num_samples`` samples of ``spec``, per the settings above.

    Raises ``INVALID_ARGUMENT`` for a setting with an unknown value (a configuration mistake
    must not silently train in the other mode)."""
    env = os.environ if environ is None else environ
    mode = env.get("MOBILETRAIN_TRAIN_STREAMING", "auto").strip().lower() or "auto"
    cache = env.get("MOBILETRAIN_TRAIN_CACHE", "none").strip().lower() or "none"
    if mode not in _MODES or cache not in _CACHES:
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT,
            f"MOBILETRAIN_TRAIN_STREAMING must be one of {', '.join(_MODES)} and "
            f"MOBILETRAIN_TRAIN_CACHE one of {', '.join(_CACHES)}",
        )
    try:
        above_mb = float(env.get("MOBILETRAIN_TRAIN_STREAM_ABOVE_MB", DEFAULT_STREAM_ABOVE_MB))
    except ValueError:
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT, "MOBILETRAIN_TRAIN_STREAM_ABOVE_MB must be a number"
        ) from None
    if spec.task not in STREAMING_KINDS or mode == "never":
        return StreamPlan(stream=False)
    if mode == "auto" and num_samples * decoded_bytes_per_sample(spec) <= above_mb * 2**20:
        return StreamPlan(stream=False)
    return StreamPlan(stream=True, disk_cache=cache == "disk")
