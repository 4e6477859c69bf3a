"""Server-side inference with the LiteRT interpreter (the runtime tflite_flutter uses).

LiteRT is not TensorFlow, so the API process may load it; interpreters are cached per model
file and guarded by a lock each, since an interpreter is not thread-safe.

Every task kind goes through the same path: the kind decodes the uploaded sample exactly as
training decoded it (an image; a WAV's clips; a sensor recording's windows), the model runs on
each example, and a sample that gives several examples gets the mean of their probabilities
(as the release gate scores it, :func:`mobiletrain.compute.litert.predict_samples`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from mobiletrain.compute.litert import LiteRTClassifier
from mobiletrain.core.ports import Predictor
from mobiletrain.core.types import InputSpec
from mobiletrain.tasks import kind as task_kind


class LiteRTPredictor(Predictor):
    """Caches up to ``capacity`` loaded models (least recently used is dropped)."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._models: OrderedDict[str, tuple[LiteRTClassifier, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    def _model(
        self, key: str, load: Callable[[], bytes]
    ) -> tuple[LiteRTClassifier, threading.Lock]:
        with self._lock:
            entry = self._models.get(key)
            if entry is not None:
                self._models.move_to_end(key)
                return entry
        entry = (LiteRTClassifier(load()), threading.Lock())
        with self._lock:
            self._models[key] = entry
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
        return entry

    def predict(
        self, model_key: str, load_model: Callable[[], bytes], spec: InputSpec, image: bytes
    ) -> list[float]:
        """Probabilities for one encoded sample of the spec's task kind (``image`` is the
        sample's bytes: an image, a WAV or a sensor CSV/JSON), preprocessed exactly as in
        training; several windows or clips of one sample are averaged."""
        kind = task_kind(spec.task)
        # Decoding raises the kind's own error codes (corrupt image, WAV or recording).
        model_input = kind.model_input(kind.decode_examples(image, spec), spec)
        model, lock = self._model(model_key, load_model)
        with lock:
            probs = model.predict(model_input)
        mean: np.ndarray = probs.mean(axis=0)
        return [float(p) for p in mean]
