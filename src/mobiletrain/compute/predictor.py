"""Server-side inference with the LiteRT interpreter (the runtime tflite_flutter uses).

LiteRT is not TensorFlow, so the API process may load it; interpreters are cached per model
file and guarded by a lock each, since an interpreter is not thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from mobiletrain.compute.litert import LiteRTModel
from mobiletrain.compute.preprocess import decode_image
from mobiletrain.core.ports import Predictor
from mobiletrain.core.types import InputSpec


class LiteRTPredictor(Predictor):
    """Caches up to ``capacity`` loaded models (least recently used is dropped)."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._models: OrderedDict[str, tuple[LiteRTModel, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    def _model(
        self, key: str, load: Callable[[], bytes], spec: InputSpec
    ) -> tuple[LiteRTModel, threading.Lock]:
        with self._lock:
            entry = self._models.get(key)
            if entry is not None:
                self._models.move_to_end(key)
                return entry
        entry = (LiteRTModel(load(), spec), threading.Lock())
        with self._lock:
            self._models[key] = entry
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
        return entry

    def predict(
        self, model_key: str, load_model: Callable[[], bytes], spec: InputSpec, image: bytes
    ) -> list[float]:
        """Probabilities for one encoded image, preprocessed exactly as in training."""
        pixels = decode_image(image, spec)[None, ...]
        model, lock = self._model(model_key, load_model, spec)
        with lock:
            probs = model.predict_uint8(pixels)
        return [float(p) for p in probs[0]]
