"""A streamed job's data (issue 18; when a job streams: ``compute/streaming.py``).

The samples stay in the blob store: tf.data reads and decodes them batch by batch in a
``numpy_function`` (parallel calls; Pillow decodes without the GIL) and feeds the task's batch
map, so the worker holds a few batches of decoded examples whatever the dataset's size. The
split and class weights come from the labels (metadata), exactly as the in-memory path computes
them for kinds with one example per sample, so a resumed or retried job gets the same split.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf

from mobiletrain.compute.keras.tasks.base import BatchMap, KerasTask
from mobiletrain.compute.protocol import TrainingRequest
from mobiletrain.compute.sample_bytes import BlobSampleBytes
from mobiletrain.core.errors import MobiletrainError

DECODE_CHUNK = 64
"""Samples read and decoded per tf.data call in front of the disk cache (without the cache,
one call per training batch)."""

SHUFFLE_BUFFER_BYTES = 256 * 2**20
"""Bound on the shuffle buffer of decoded examples behind the disk cache (without the cache the
sample indices are shuffled in full instead: 8 bytes a sample)."""

DATA_CACHE_DIR = "data-cache"
"""The disk cache's folder in the job's work dir (removed before and after training)."""


class Stream:
    """A streamed job's samples: read from the blob store and decoded on demand (rows are
    sample indices: streamed kinds give one example per sample)."""

    def __init__(self, request: TrainingRequest, task: KerasTask, images: BlobSampleBytes):
        self.request = request
        self.task = task
        self.images = images
        self.error: MobiletrainError | None = None  # the first failure inside tf.data
        self.first = self.decode(np.zeros(1, np.int64))  # shape and dtype; a bad sample 0 fails
        self.example_shape: tuple[int, ...] = tuple(self.first.shape[1:])
        self.dtype = self.first.dtype

    def decode(self, rows: np.ndarray) -> np.ndarray:
        """Examples of samples ``rows``, in that order."""
        ids = [self.request.sample_ids[int(i)] for i in rows]
        return self.task.decode_many(self.request, self.images.get_many(rows.tolist()), ids)

    def tf_decode(self, rows: np.ndarray) -> np.ndarray:
        """:meth:`decode` inside tf.data, which wraps exceptions in OpErrors: keep the first
        MobiletrainError so the job fails with its code and sample (see :func:`errors`)."""
        try:
            return self.decode(rows)
        except MobiletrainError as exc:
            self.error = self.error or exc
            raise


@contextlib.contextmanager
def errors(stream: Stream | None) -> Iterator[None]:
    """A streamed sample that fails to read or decode fails the job with its own error code
    (CORRUPT_IMAGE, SAMPLE_DAMAGED ...) rather than TensorFlow's wrapper of it."""
    try:
        yield
    except tf.errors.OpError:
        if stream is not None and stream.error is not None:
            raise stream.error from None
        raise


def cache_dir(request: TrainingRequest) -> Path:
    """Where a streamed job with ``data_cache`` keeps its decoded examples."""
    return request.work_dir / DATA_CACHE_DIR


def remove_cache(request: TrainingRequest) -> None:
    """Drop the disk cache (a crashed attempt's partial cache is never read)."""
    shutil.rmtree(cache_dir(request), ignore_errors=True)


def dataset(
    request: TrainingRequest,
    stream: Stream,
    labels: np.ndarray,
    rows: np.ndarray,
    batch_map: BatchMap,
    drop_remainder: bool,
    cache_name: str | None,
    training: bool,
) -> tf.data.Dataset:
    """Batches of ``rows`` (indices into ``labels``): read, decode, the task's map.

    ``training`` reshuffles every epoch: without a cache the sample indices are shuffled in
    full (seeded, like the in-memory path's shuffle); with the disk cache (``cache_name``, the
    file in :func:`cache_dir`) the decoded examples are cached in a fixed order and then
    shuffled in a buffer bounded by :data:`SHUFFLE_BUFFER_BYTES`.
    """
    hp = request.hyperparameters
    autotune = tf.data.AUTOTUNE
    y = tf.constant(labels, tf.int64)
    shape = (None, *stream.example_shape)

    def load(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.numpy_function(stream.tf_decode, [index], tf.as_dtype(stream.dtype), stateful=False)
        x.set_shape(shape)
        return x, tf.gather(y, index)

    ds = tf.data.Dataset.from_tensor_slices(rows.astype(np.int64))
    if cache_name is None:
        if training:
            ds = ds.shuffle(len(rows), seed=hp.seed, reshuffle_each_iteration=True)
        ds = ds.batch(hp.batch_size, drop_remainder=drop_remainder)
        ds = ds.map(load, num_parallel_calls=autotune)
    else:
        folder = cache_dir(request)
        folder.mkdir(parents=True, exist_ok=True)
        ds = (
            ds.batch(DECODE_CHUNK)
            .map(load, num_parallel_calls=autotune)
            .unbatch()
            .apply(tf.data.experimental.assert_cardinality(len(rows)))
            .cache(str(folder / cache_name))
        )
        if training:
            example_bytes = max(1, int(np.prod(stream.example_shape)) * stream.dtype.itemsize)
            buffer = min(len(rows), max(hp.batch_size, SHUFFLE_BUFFER_BYTES // example_bytes))
            ds = ds.shuffle(buffer, seed=hp.seed, reshuffle_each_iteration=True)
        ds = ds.batch(hp.batch_size, drop_remainder=drop_remainder)
    return ds.map(lambda x, y: (batch_map(x), y), num_parallel_calls=autotune).prefetch(autotune)
