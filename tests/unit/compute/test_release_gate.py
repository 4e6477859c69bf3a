"""The release gate end to end in the worker: real training, real LiteRT, real SQLite.

A good version becomes current; a much worse one (trained for one step at a tiny learning rate)
is kept as a candidate with the reason, and carries the chance-level warning. Its embedded
model card, read back from the .tflite without TensorFlow, names its version and per-class
metrics. Promote and rollback then move what ``check_update`` answers.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobiletrain.compute.litert import read_embedded_manifest
from mobiletrain.compute.worker import run_job
from mobiletrain.config import Settings
from mobiletrain.container import Container
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.release import ReleaseMode, ReleasePolicy
from mobiletrain.core.services import IncomingSample
from mobiletrain.core.types import (
    Architecture,
    ColorMode,
    EventKind,
    Hyperparameters,
    InputSpec,
    Job,
    JobState,
    ModelFormat,
)
from mobiletrain.wiring import build_container

pytestmark = pytest.mark.slow

FORMATS = [ModelFormat.FLOAT32, ModelFormat.INT8]
LABELS = ["0", "1", "2", "3"]


@dataclass
class Env:
    container: Container
    project_id: str
    work: Path


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("gate")
    container = build_container(Settings(data_dir=root / "data"))
    try:
        digits = load_digits()
        keep = np.isin(digits.target, [int(x) for x in LABELS])
        pixels = np.round(digits.images[keep] * (255.0 / 16.0)).astype(np.uint8)
        targets = digits.target[keep]
        spec = InputSpec(width=16, height=16, color_mode=ColorMode.GRAYSCALE)
        project = container.projects.create("gate", labels=LABELS, input_spec=spec)
        container.datasets.upload(
            project.id,
            [
                IncomingSample(f"s{i}", str(int(y)), _png(p))
                for i, (p, y) in enumerate(zip(pixels, targets, strict=True))
            ],
        )
        yield Env(container, project.id, root / "work")
    finally:
        container.close()


def _train(env: Env, **hp: object) -> Job:
    store = env.container.store
    job = Job(
        id=f"job-{datetime.now(UTC).timestamp()}",
        project_id=env.project_id,
        state=JobState.QUEUED,
        hyperparameters=Hyperparameters(formats=list(FORMATS), batch_size=32, **hp),  # type: ignore[arg-type]
        created_at=datetime.now(UTC),
    )
    store.create_job(job)
    state = run_job(store, env.container.blobs, job.id, env.work / job.id)
    done = store.get_job(job.id)
    assert done is not None
    assert state is JobState.SUCCEEDED, done.error
    return done


def _events(env: Env, job_id: str, kind: EventKind) -> list[dict[str, object]]:
    return [e.data for e in env.container.store.list_events(job_id, 0, 10_000) if e.kind is kind]


def test_eval_set_is_fixed_stratified_and_never_trains(env: Env) -> None:
    job = _train(env, epochs=6)
    samples = env.container.store.all_samples(env.project_id)
    held = [s for s in samples if s.in_eval_set]
    assert all(s.in_eval_set is not None for s in samples)
    for label in LABELS:
        n = sum(1 for s in samples if s.label == label)
        k = sum(1 for s in held if s.label == label)
        assert k == round(n * 0.2), (label, n, k)  # the same share of every label
    model = env.container.models.get(env.project_id, job.model_version or 0)
    held_ids = {s.id for s in held}
    split = model.metrics["split"]
    assert held_ids.isdisjoint(split["train_ids"]) and held_ids.isdisjoint(split["validation_ids"])
    assert model.evaluation is not None
    assert model.evaluation.eval_set.num_samples == len(held)
    assert set(model.evaluation.formats) == {"float32", "int8"}
    # The first version passes the gate: it is current, and the decision is an event.
    assert env.container.models.list(env.project_id)[1] == model.version
    (release,) = _events(env, job.id, EventKind.RELEASE)
    assert release["promoted"] is True and release["status"] == "current"
    phases = [d["phase"] for d in _events(env, job.id, EventKind.PHASE)]
    assert phases == ["preparing data", "training", "exporting", "evaluating"]
    progress = _events(env, job.id, EventKind.PROGRESS)
    # Data loading reports samples read (no job ETA yet: nothing was trained to time it).
    loading = [p for p in progress if p.get("phase") == "preparing data"]
    training = [p for p in progress if p.get("phase") != "preparing data"]
    assert loading and loading[-1]["batch"] == loading[-1]["batches"]
    assert training and all(
        float(p["job_eta_seconds"]) >= float(p["eta_seconds"])  # type: ignore[arg-type]
        for p in training
    )
    # The same samples stay in the set at the next job (it only grows).
    _train(env, epochs=1, learning_rate=1e-6)
    again = {s.id for s in env.container.store.all_samples(env.project_id) if s.in_eval_set}
    assert again == held_ids


def test_worse_version_stays_candidate_with_reason_and_card(env: Env) -> None:
    models = env.container.models
    versions, current = models.list(env.project_id)
    assert current == 1 and [v.version for v in versions] == [2, 1]
    worse = versions[0]
    assert models.status_of(worse, current).value == "candidate"
    assert worse.decision is not None and not worse.decision.promoted
    assert "worse than current version 1" in worse.decision.reason
    assert any("chance level" in w for w in worse.warnings)

    # The card embedded in the candidate's file names it and carries per-class metrics.
    _, artifact = models.artifact(env.project_id, 2, "float32")
    card = read_embedded_manifest(env.container.blobs.get(artifact.sha256))
    assert card is not None
    assert card["version"] == 2 and card["job_id"] == worse.job_id
    assert card["project"]["name"] == "gate"
    assert card["release"]["promoted"] is False
    assert [c["label"] for c in card["metrics"]["per_class"]] == LABELS
    assert {"precision", "recall", "f1"} <= set(card["metrics"]["per_class"][0])
    assert len(card["metrics"]["confusion_matrix"]) == len(LABELS)
    assert "SHA-256" in card["embedded_note"] and "float32" not in card["files"]
    assert "keras" in card["files"]  # files without an embedded card are listed
    assert card["evaluation"]["eval_set"]["num_samples"] > 0
    assert sum(card["dataset"]["class_counts"].values()) == card["dataset"]["num_samples"]

    # Apps keep getting version 1 until a person decides otherwise.
    _, model, _ = models.check_update(env.project_id, "float32")
    assert model.version == 1
    models.promote(env.project_id, 2, reason="try it")
    assert models.check_update(env.project_id, "float32")[1].version == 2
    models.rollback(env.project_id, reason="worse on phones")
    assert models.check_update(env.project_id, "float32")[1].version == 1
    history = models.history(env.project_id)
    assert [(r.action.value, r.version, r.previous_version) for r in history] == [
        ("rollback", 1, 2),
        ("manual-promote", 2, 1),
        ("promoted", 1, None),
    ]
    assert history[0].reason == "worse on phones"


def test_manual_policy_never_promotes(env: Env) -> None:
    models = env.container.models
    models.set_policy(env.project_id, ReleasePolicy(mode=ReleaseMode.MANUAL))
    try:
        job = _train(env, epochs=6)
        model = models.get(env.project_id, job.model_version or 0)
        assert model.decision is not None and "manual" in model.decision.reason
        assert models.list(env.project_id)[1] == 1
    finally:
        models.set_policy(env.project_id, ReleasePolicy())
    with pytest.raises(MobiletrainError) as err:
        models.set_policy(env.project_id, ReleasePolicy(margin=2.0))
    assert err.value.code is ErrorCode.INVALID_RELEASE_POLICY


def test_mobilenet_without_reachable_weights_fails_unless_random_init(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keras.src.backend import config as keras_config

    # An empty Keras cache and a proxy nobody listens on: the real download fails.
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras-home"))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    store = env.container.store
    project = env.container.projects.create(
        "mobile", input_spec=InputSpec(width=32, height=32, color_mode=ColorMode.GRAYSCALE)
    )
    rng = np.random.default_rng(0)
    env.container.datasets.upload(
        project.id,
        [
            IncomingSample(f"m{i}", "ab"[i % 2], _png(rng.integers(0, 255, (32, 32), np.uint8)))
            for i in range(24)
        ],
    )

    def job(**hp: object) -> tuple[JobState, Job]:
        job = Job(
            id=f"mobile-{len(hp)}",
            project_id=project.id,
            state=JobState.QUEUED,
            hyperparameters=Hyperparameters(
                architecture=Architecture.MOBILENET_V3_SMALL,
                epochs=1,
                formats=[ModelFormat.KERAS],  # no TFLite conversion: keeps the test short
                **hp,  # type: ignore[arg-type]
            ),
            created_at=datetime.now(UTC),
        )
        store.create_job(job)
        state = run_job(store, env.container.blobs, job.id, env.work / job.id)
        done = store.get_job(job.id)
        assert done is not None
        return state, done

    state, failed = job()
    assert state is JobState.FAILED and "allow_random_init" in failed.error
    (final,) = [d for d in _events(env, failed.id, EventKind.STATE) if d["state"] == "failed"]
    assert final["error_code"] == ErrorCode.BASE_WEIGHTS_UNAVAILABLE.number == 55

    state, done = job(allow_random_init=True)
    assert state is JobState.SUCCEEDED, done.error
    model = env.container.models.get(project.id, done.model_version or 0)
    assert any("random initialisation" in w for w in model.warnings)
    assert model.manifest["warnings"] == model.warnings
    # Without a .tflite file the gate has nothing to measure: the version waits for a person.
    assert model.decision is not None and not model.decision.promoted
