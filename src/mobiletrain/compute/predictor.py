"""Server-side inference with the LiteRT interpreter (the runtime tflite_flutter uses).

LiteRT is not TensorFlow, so the API process may load it. An interpreter is not thread-safe, so
each loaded model keeps a small pool of interpreters: a call borrows one for its invoke and
gives it back, concurrent calls on the same model run on different interpreters (up to
``per_model`` of them, then they wait for one), and the model file is read from the blob store
once, not per call. Models are kept by their content hash (least recently used dropped).

Every task kind goes through the same path: the kind decodes the uploaded sample exactly as
training decoded it (an image; a WAV's clips; a sensor recording's windows), the model runs on
each example, and a sample that gives several examples gets the mean of their probabilities
(as the release gate scores it, :func:`mobiletrain.compute.litert.predict_samples`).
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from mobiletrain.compute.litert import LiteRTClassifier
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.ports import Predictor
from mobiletrain.core.types import InputSpec, TaskType
from mobiletrain.tasks import kind as task_kind

DEFAULT_PER_MODEL = min(4, os.cpu_count() or 1)
"""Interpreters per loaded model: more than the cores buys nothing, since each invoke runs on
one thread (``num_threads=1``: a server answers many small calls, not one big one)."""

INLINE_BUDGET_MS = 2.0
"""A model whose decode + invoke takes less than this (see :attr:`InterpreterPool.cost_ms`) may
be answered on the caller's thread (the server's event loop, see :meth:`LiteRTPredictor.ready`)."""

INLINE_MAX_BYTES = 256 * 1024
"""Larger samples always go to a worker thread (WAV and sensor work grows with the bytes)."""

INLINE_MAX_PIXELS = 1024 * 1024
"""Larger images (read from the header, not decoded) always go to a worker thread: a small,
highly compressed PNG may still decode to many pixels."""


class InterpreterPool:
    """Up to ``size`` interpreters of one model, made when first needed and reused."""

    def __init__(self, model_bytes: bytes, size: int) -> None:
        self.model_bytes = model_bytes
        self.size = size
        self._idle: list[LiteRTClassifier] = []
        self._made = 0
        self._cost_ms: float | None = None
        self._cond = threading.Condition()

    @property
    def made(self) -> int:
        """Interpreters made so far (never more than ``size``)."""
        with self._cond:
            return self._made

    @contextmanager
    def borrow(self) -> Iterator[LiteRTClassifier]:
        """An interpreter no other call is using, until the block ends."""
        with self._cond:
            while not self._idle and self._made >= self.size:
                self._cond.wait()
            make = not self._idle
            if make:
                self._made += 1
            else:
                interpreter = self._idle.pop()
        if make:
            try:
                interpreter = LiteRTClassifier(self.model_bytes, num_threads=1)
            except BaseException:
                with self._cond:
                    self._made -= 1
                    self._cond.notify()
                raise
        try:
            yield interpreter
        finally:
            self._give_back(interpreter)

    @contextmanager
    def borrow_idle(self) -> Iterator[LiteRTClassifier | None]:
        """An idle interpreter until the block ends, or None at once when none is idle
        (never makes one and never waits: for the event loop)."""
        with self._cond:
            interpreter = self._idle.pop() if self._idle else None
        if interpreter is None:
            yield None
            return
        try:
            yield interpreter
        finally:
            self._give_back(interpreter)

    def has_idle(self) -> bool:
        """Whether an interpreter is waiting for work now."""
        with self._cond:
            return bool(self._idle)

    def record(self, ms: float) -> None:
        """Note how long one decode + invoke took (see :attr:`cost_ms`)."""
        with self._cond:
            previous = self._cost_ms
            # Down at once, up by a tenth of the excess: on a busy machine a cheap model's
            # calls are sometimes descheduled, which says nothing about the model, while a
            # model that is slow on every call still climbs over the budget within a few calls.
            # (Wall time, not thread CPU time: reading the latter costs a GIL hand-off.)
            self._cost_ms = ms if previous is None else min(ms, previous + 0.1 * (ms - previous))

    @property
    def cost_ms(self) -> float | None:
        """Typical decode + invoke time of recent calls, in ms; None before the first."""
        with self._cond:
            return self._cost_ms

    def _give_back(self, interpreter: LiteRTClassifier) -> None:
        with self._cond:
            self._idle.append(interpreter)
            self._cond.notify()


class LiteRTPredictor(Predictor):
    """Keeps up to ``capacity`` loaded models, each with up to ``per_model`` interpreters."""

    def __init__(self, capacity: int = 8, per_model: int = DEFAULT_PER_MODEL) -> None:
        if capacity < 1 or per_model < 1:
            raise ValueError("capacity and per_model must be at least 1")
        self.capacity = capacity
        self.per_model = per_model
        self._models: OrderedDict[str, InterpreterPool] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def pool(self, key: str, load: Callable[[], bytes]) -> InterpreterPool:
        """The model's interpreter pool; ``load`` (the file's bytes) runs once per key even
        when calls race, and again only after the model was dropped."""
        with self._lock:
            pool = self._models.get(key)
            if pool is not None:
                self._models.move_to_end(key)
                return pool
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                pool = self._models.get(key)
            if pool is None:
                pool = InterpreterPool(load(), self.per_model)
                with self._lock:
                    self._models[key] = pool
                    while len(self._models) > self.capacity:
                        self._models.popitem(last=False)
        with self._lock:
            self._loading.pop(key, None)
        return pool

    def loaded(self) -> list[str]:
        """Keys of the models kept now, least recently used first."""
        with self._lock:
            return list(self._models)

    def predict(
        self, model_key: str, load_model: Callable[[], bytes], spec: InputSpec, image: bytes
    ) -> list[float]:
        """Probabilities for one encoded sample of the spec's task kind (``image`` is the
        sample's bytes: an image, a WAV or a sensor CSV/JSON), preprocessed exactly as in
        training; several windows or clips of one sample are averaged."""
        pool = self.pool(model_key, load_model)
        started = time.perf_counter()
        model_input = _model_input(spec, image)
        cost = time.perf_counter() - started
        with pool.borrow() as model:  # may make an interpreter: not part of the cost
            started = time.perf_counter()
            probs = model.predict(model_input)
            cost += time.perf_counter() - started
        pool.record(cost * 1000)
        return _mean(probs)

    def ready(self, model_key: str, spec: InputSpec, image: bytes) -> bool:
        """True when the model is loaded with an idle interpreter, its recent decode + invoke
        averaged under :data:`INLINE_BUDGET_MS` and the sample is small (bytes; an image's
        pixels from its header)."""
        with self._lock:
            pool = self._models.get(model_key)
        if pool is None or not pool.has_idle():
            return False
        cost = pool.cost_ms
        if cost is None or cost > INLINE_BUDGET_MS or len(image) > INLINE_MAX_BYTES:
            return False
        return _few_pixels(spec, image)

    def predict_now(self, model_key: str, spec: InputSpec, image: bytes) -> list[float] | None:
        """:meth:`predict` on a loaded model's idle interpreter; None (nothing done) when the
        model is not loaded or every interpreter is busy."""
        with self._lock:
            pool = self._models.get(model_key)
        if pool is None:
            return None
        started = time.perf_counter()
        with pool.borrow_idle() as model:
            if model is None:
                return None
            probs = model.predict(_model_input(spec, image))
        pool.record((time.perf_counter() - started) * 1000)
        return _mean(probs)


def _model_input(spec: InputSpec, data: bytes) -> np.ndarray:
    if spec.task is TaskType.OBJECT_DETECTION:
        # A detector answers boxes, which Predict's probabilities cannot carry yet.
        raise MobiletrainError(
            ErrorCode.UNSUPPORTED_TASK,
            "server-side Predict does not serve object-detection models yet; run the .tflite "
            "file on the device (outputs: detection_boxes, detection_classes, "
            "detection_scores, num_detections)",
        )
    kind = task_kind(spec.task)
    # Decoding raises the kind's own error codes (corrupt image, WAV or recording).
    return kind.model_input(kind.decode_examples(data, spec), spec)


def _mean(probs: np.ndarray) -> list[float]:
    mean: np.ndarray = probs.mean(axis=0)
    return [float(p) for p in mean]


def _few_pixels(spec: InputSpec, data: bytes) -> bool:
    """For image kinds: the header says at most :data:`INLINE_MAX_PIXELS` (an unreadable
    header: False, the worker thread reports the error). Audio and sensor kinds: True (their
    work grows with the bytes, bounded by :data:`INLINE_MAX_BYTES`)."""
    if spec.task in (TaskType.AUDIO_CLASSIFICATION, TaskType.SENSOR_CLASSIFICATION):
        return True
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            width, height = img.size
    except Exception:
        return False
    return width * height <= INLINE_MAX_PIXELS
