"""The on-device toolkit of the API process: export in a child process, patch and evaluate
with LiteRT (the API process never imports TensorFlow)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mobiletrain.compute.metrics import classification_report, cross_entropy
from mobiletrain.compute.ondevice import (
    FeatureExtractor,
    HeadInference,
    HeadSpec,
    PatchSite,
    patch_weights,
    weights_from_bytes,
)
from mobiletrain.compute.preprocess import decode_image
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import InputSpec, ModelFormat
from mobiletrain.federated.ports import OnDeviceToolkit, PreparedFiles

# Files whose bytes carry the head weights, republished after every round.
WEIGHTED_FORMATS = (ModelFormat.FLOAT32, ModelFormat.HEAD_SIGNATURES)
EXPORT_TIMEOUT_S = 900


class LocalOnDeviceToolkit(OnDeviceToolkit):
    """Exports with ``python -m mobiletrain.compute.keras.ondevice``; LiteRT for the rest."""

    def __init__(self, work_dir: Path | None = None, cache_size: int = 4) -> None:
        self.work_dir = work_dir
        self.cache_size = cache_size
        self._features: dict[str, np.ndarray] = {}
        # Exports are deterministic: sessions with the same settings reuse the files.
        self._exports: dict[str, PreparedFiles] = {}
        self._lock = threading.Lock()

    def prepare(
        self,
        spec: InputSpec,
        head: dict[str, Any],
        manifest: dict[str, Any],
        base_model: bytes | None,
        seed: int,
    ) -> PreparedFiles:
        """Run the export in a child process and read its files back (cached)."""
        key = hashlib.sha256(
            json.dumps([spec.to_dict(), head, manifest, seed], sort_keys=True).encode()
            + hashlib.sha256(base_model or b"").digest()
        ).hexdigest()
        with self._lock:
            cached = self._exports.get(key)
        if cached is not None:
            return cached
        prepared = self._prepare(spec, head, manifest, base_model, seed)
        with self._lock:
            self._exports[key] = prepared
            while len(self._exports) > self.cache_size:
                self._exports.pop(next(iter(self._exports)))
        return prepared

    def _prepare(
        self,
        spec: InputSpec,
        head: dict[str, Any],
        manifest: dict[str, Any],
        base_model: bytes | None,
        seed: int,
    ) -> PreparedFiles:
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="ondevice-", dir=self.work_dir) as tmp:
            folder = Path(tmp)
            request: dict[str, Any] = {
                "input_spec": spec.to_dict(),
                "head": head,
                "manifest": manifest,
                "seed": seed,
                "base_model": None,
            }
            if base_model is not None:
                (folder / "base.keras").write_bytes(base_model)
                request["base_model"] = "base.keras"
            (folder / "request.json").write_text(json.dumps(request))
            out = folder / "out"
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mobiletrain.compute.keras.ondevice",
                    "--request",
                    str(folder / "request.json"),
                    "--out",
                    str(out),
                ],
                capture_output=True,
                env=env,
                timeout=EXPORT_TIMEOUT_S,
                check=False,
            )
            if result.returncode != 0:
                tail = result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
                raise MobiletrainError(
                    ErrorCode.INTERNAL,
                    "the on-device files could not be exported"
                    + (f": {tail[0][:200]}" if tail else ""),
                )
            info = json.loads((out / "result.json").read_text())
            files = {
                fmt: (out / fmt.value).read_bytes()
                for fmt in ModelFormat
                if (out / fmt.value).is_file()
            }
        weights = files.pop(ModelFormat.HEAD_WEIGHTS)
        return PreparedFiles(
            files=files,
            head=info["head"],
            ondevice=info["manifest"],
            patch_sites=info["patch_sites"],
            weights=weights,
        )

    def republish(
        self,
        templates: Mapping[ModelFormat, bytes],
        patch_sites: Mapping[str, Sequence[dict[str, Any]]],
        head: dict[str, Any],
        weights: bytes,
    ) -> dict[ModelFormat, bytes]:
        """Patched copies of the weighted files plus the weights file."""
        tensors = weights_from_bytes(weights, HeadSpec.from_dict(head))
        out: dict[ModelFormat, bytes] = {ModelFormat.HEAD_WEIGHTS: weights}
        for fmt, template in templates.items():
            sites = [PatchSite.from_dict(s) for s in patch_sites.get(fmt.value, [])]
            if sites:
                out[fmt] = patch_weights(template, sites, tensors)
        return out

    def evaluate(
        self,
        cache_key: str,
        extractor: bytes,
        head_inference: bytes,
        head: dict[str, Any],
        spec: InputSpec,
        load_images: Callable[[], Sequence[bytes]],
        labels: Sequence[int],
        label_names: Sequence[str],
        weights: bytes,
    ) -> dict[str, Any]:
        """Accuracy, loss, macro F1, per-class metrics and confusion matrix in LiteRT."""
        spec_head = HeadSpec.from_dict(head)
        with self._lock:
            features = self._features.get(cache_key)
        if features is None or len(features) != len(labels):
            pixels = np.stack([decode_image(data, spec) for data in load_images()])
            features = FeatureExtractor(extractor, spec).features(pixels)
            with self._lock:
                self._features[cache_key] = features
                while len(self._features) > 8:
                    self._features.pop(next(iter(self._features)))
        probabilities = HeadInference(head_inference, spec_head).predict(
            features, weights_from_bytes(weights, spec_head)
        )
        y_true = np.asarray(labels, dtype=np.int64)
        report = classification_report(
            y_true, probabilities.argmax(axis=1), spec_head.num_classes, label_names
        )
        report["loss"] = cross_entropy(probabilities, y_true)
        report["num_samples"] = len(y_true)
        return report
