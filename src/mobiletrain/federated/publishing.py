"""Evaluate a round's model on the held-out samples and publish it as a model version.

A federated project's training data stays on the devices; the samples stored on the server
are its held-out data. Every aggregated round is evaluated on them with the session's
head-inference file and published with fresh copies of the files that carry the weights.
"""

from __future__ import annotations

import logging
from typing import Any

from mobiletrain.core.errors import MobiletrainError
from mobiletrain.core.manifest import (
    FileInfo,
    FormatInfo,
    ModelManifest,
    TensorInfo,
    ValidationMetrics,
)
from mobiletrain.core.types import Artifact, ModelFormat, ModelVersion
from mobiletrain.federated.head import HeadSpec
from mobiletrain.federated.records import FederatedSession
from mobiletrain.federated.rounds import RoundState
from mobiletrain.federated.state import Context, now

log = logging.getLogger("mobiletrain.federated")


def without_device_ids(result: dict[str, Any]) -> dict[str, Any]:
    """A round's result for job events and version metrics, which device tokens read: the
    per-device answers become counts (the full record is in the rounds, for administrators)."""
    out = {k: v for k, v in result.items() if k not in ("accepted", "rejected", "failed")}
    for key in ("rejected", "failed"):
        if isinstance(result.get(key), dict):
            out[key] = len(result[key])
    return out


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The held-out numbers worth keeping with every round."""
    return {k: metrics[k] for k in ("accuracy", "loss", "macro_f1", "num_samples") if k in metrics}


class Publisher:
    """Held-out evaluation and publishing of a session's models."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def evaluate(
        self, session: FederatedSession, head: HeadSpec | None, weights: bytes
    ) -> dict[str, Any]:
        """The held-out evaluation: the project's samples with one of the session's labels."""
        ctx = self.ctx
        index = {label: i for i, label in enumerate(session.labels)}
        samples = [s for s in ctx.store.all_samples(session.project_id) if s.label in index]
        if not samples or head is None:
            return {}
        project = ctx.store.get_project(session.project_id)
        assert project is not None
        try:
            return ctx.toolkit.evaluate(
                f"{session.id}:{len(samples)}:{samples[-1].id}",
                ctx.blobs.get(session.files[ModelFormat.FEATURE_EXTRACTOR.value]["sha256"]),
                ctx.blobs.get(session.files[ModelFormat.HEAD_INFERENCE.value]["sha256"]),
                head.to_dict(),
                project.input_spec,
                lambda: [ctx.blobs.get(s.sha256) for s in samples],
                [index[s.label] for s in samples],
                session.labels,
                weights,
            )
        except MobiletrainError:
            log.warning("held-out evaluation of session %s failed", session.id, exc_info=True)
            return {}

    def publish(
        self,
        session: FederatedSession,
        rnd: RoundState,
        weights: bytes,
        metrics: dict[str, Any],
        result: dict[str, Any],
    ) -> int:
        """Store a round's model as a new version of the project; returns its number."""
        ctx = self.ctx
        bundle = session.bundle
        templates = {
            fmt: ctx.blobs.get(session.files[fmt.value]["sha256"])
            for fmt in (ModelFormat.FLOAT32, ModelFormat.HEAD_SIGNATURES)
            if fmt.value in session.files
        }
        fresh = ctx.toolkit.republish(
            templates, bundle.get("patch_sites", {}), bundle["head"], weights
        )
        artifacts: dict[ModelFormat, Artifact] = {}
        for fmt_name, info in session.files.items():
            fmt = ModelFormat(fmt_name)
            artifacts[fmt] = Artifact(fmt, info["sha256"], int(info["size"]))
        for fmt, data in fresh.items():
            artifacts[fmt] = Artifact(fmt, ctx.blobs.put(data), len(data))
        ctx.blobs.sync()
        project = ctx.store.get_project(session.project_id)
        assert project is not None
        manifest = ModelManifest.from_dict(bundle.get("manifest", {}))
        manifest.project_id, manifest.project_name = project.id, project.name
        manifest.job_id, manifest.created_at = session.job_id, now()
        manifest.files = {
            fmt.value: FileInfo.for_format(fmt, a.sha256, a.size) for fmt, a in artifacts.items()
        }
        manifest.formats = {fmt.value: FormatInfo.for_format(fmt) for fmt in artifacts}
        classifier = bundle.get("ondevice", {}).get("classifier")
        if classifier and ModelFormat.FLOAT32 in artifacts:
            # The same tensor description as a trained version's float32 file.
            manifest.formats[ModelFormat.FLOAT32.value] = FormatInfo.for_format(
                ModelFormat.FLOAT32,
                TensorInfo(classifier["inputs"][0]["dtype"], classifier["inputs"][0]["shape"]),
                TensorInfo(classifier["outputs"][0]["dtype"], classifier["outputs"][0]["shape"]),
            )
        manifest.validation = ValidationMetrics(
            extra={"held_out_accuracy": metrics.get("accuracy")}
        )
        manifest.extra = {
            **manifest.extra,
            "ondevice": bundle.get("ondevice", {}),
            "federated": {
                "session_id": session.id,
                "round": rnd.number,
                "rounds": session.config.rounds,
                "strategy": session.config.strategy.value,
                "devices": len(rnd.accepted),
                "noise_std": result.get("noise_std", 0.0),
                "clip_norm": session.config.clip_norm,
            },
        }
        version_metrics: dict[str, Any] = {
            **metrics,
            "labels": list(session.labels),
            "federated": without_device_ids(result),
        }
        if "accuracy" in metrics:
            version_metrics["tflite"] = {
                ModelFormat.FLOAT32.value: {"accuracy": metrics["accuracy"]}
            }
        model = ctx.store.create_model_version(
            ModelVersion(
                project_id=session.project_id,
                version=0,
                job_id=session.job_id,
                created_at=now(),
                metrics=version_metrics,
                manifest=manifest.to_dict(),
                artifacts=artifacts,
            )
        )
        return model.version
