"""Predict keeps versions and interpreters in memory (issue 18); these check it stays correct.

Two real .tflite classifiers (TensorFlow builds them, LiteRT runs them) that always answer
"cat" (version 1) and "dog" (version 2) are stored as versions of a real SQLite-backed
project. A promotion or rollback must be seen by the very next prediction on both the event
loop path (REST route, ``predict_now``) and the thread path; concurrent predictions on one
model must agree; the interpreter pool, the model cache and the version cache stay bounded.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mobiletrain.api.rest.app import create_app
from mobiletrain.compute.keras.export import export, write_saved_model
from mobiletrain.compute.predictor import LiteRTPredictor
from mobiletrain.config import Settings
from mobiletrain.container import Container
from mobiletrain.core.auth import SYSTEM, acting_as
from mobiletrain.core.types import Artifact, ColorMode, InputSpec, ModelFormat, ModelVersion
from mobiletrain.wiring import build_container

SIDE = 8


def _constant_model(tmp: Path, winner: int) -> bytes:
    """A float32 .tflite for 8×8 grayscale images whose softmax always ranks ``winner`` first."""
    inputs = keras.Input((SIDE, SIDE, 1))
    dense = keras.layers.Dense(2, activation="softmax")
    outputs = dense(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    bias = np.zeros(2, np.float32)
    bias[winner] = 4.0
    dense.set_weights([np.zeros((SIDE * SIDE, 2), np.float32), bias])
    saved = write_saved_model(model, tmp / f"sm{winner}")
    return export(model, ModelFormat.FLOAT32, np.zeros((0, SIDE, SIDE, 1), np.float32), saved)


@pytest.fixture(scope="module")
def tflites(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    tmp = tmp_path_factory.mktemp("predict-cache")
    return _constant_model(tmp, 0), _constant_model(tmp, 1)


def _png(shade: int, size: int = SIDE) -> bytes:
    out = io.BytesIO()
    Image.new("L", (size, size), shade).save(out, "PNG")
    return out.getvalue()


def add_version(container: Container, project_id: str, data: bytes) -> int:
    """Store ``data`` as the float32 file of a new released version; its number."""
    sha = container.blobs.put(data)
    container.blobs.sync()
    model = container.store.create_model_version(
        ModelVersion(
            project_id=project_id,
            version=0,
            job_id="job-1",
            created_at=datetime.now(UTC),
            metrics={},
            manifest={"labels": ["cat", "dog"], "schema_version": 1},
            artifacts={ModelFormat.FLOAT32: Artifact(ModelFormat.FLOAT32, sha, len(data))},
        )
    )
    return model.version


SPEC = InputSpec(width=SIDE, height=SIDE, color_mode=ColorMode.GRAYSCALE)


@pytest.fixture
def served(tmp_path: Path, tflites: tuple[bytes, bytes]) -> Iterator[tuple[TestClient, Container]]:
    container = build_container(Settings(data_dir=tmp_path / "data"))
    try:
        admin = container.tokens.create_bootstrap_admin()
        headers = {"Authorization": f"Bearer {admin}"}
        with TestClient(create_app(container), headers=headers) as client:
            body = {"name": "m", "labels": ["cat", "dog"], "input_spec": SPEC.to_dict()}
            project = client.post("/v1/projects", json=body)
            assert project.status_code in (200, 201), project.text
            for data in tflites:  # version 1 says cat, version 2 says dog
                add_version(container, project.json()["id"], data)
            yield client, container
    finally:
        container.close()


def _rest_top(client: TestClient, shade: int = 7) -> tuple[str, int]:
    r = client.post("/v1/projects/m/predict", files={"file": ("x.png", _png(shade), "image/png")})
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0]["label"], r.json()["version"]


def test_promotion_and_rollback_are_seen_by_the_next_prediction(
    served: tuple[TestClient, Container],
) -> None:
    client, container = served
    for _ in range(3):  # the first call loads; the next ones run on the event loop
        assert _rest_top(client) == ("dog", 2)
    with acting_as(SYSTEM):
        assert container.models.predict_now("m", _png(3)) is not None  # warm: answered inline
    assert client.post("/v1/projects/m/models/2:promote").status_code == 200
    assert _rest_top(client) == ("dog", 2)
    assert client.post("/v1/projects/m/models/1:promote").status_code == 200
    assert _rest_top(client) == ("cat", 1)
    with acting_as(SYSTEM):
        now = container.models.predict_now("m", _png(3))
        assert now is not None and now[1][0].label == "cat" and now[0].version == 1
    assert client.post("/v1/projects/m/models:rollback", json={}).status_code == 200
    assert _rest_top(client) == ("dog", 2)
    with acting_as(SYSTEM):
        model, top, _ = container.models.predict("m", _png(3))
        assert (model.version, top[0].label) == (2, "dog")
    # An explicit version is served as asked, whatever is current.
    r = client.post("/v1/projects/m/predict:base64", json={"image": _b64(_png(1)), "version": 1})
    assert r.json()["predictions"][0]["label"] == "cat" and r.json()["version"] == 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_concurrent_predictions_agree_and_the_caches_stay_bounded(
    served: tuple[TestClient, Container],
) -> None:
    _, container = served
    models = container.models
    models.served.capacity = 1  # two versions in turn: every switch misses, none goes stale
    predictor = models.predictor
    assert isinstance(predictor, LiteRTPredictor)
    results: list[tuple[int, str]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(version: int) -> None:
        try:
            with acting_as(SYSTEM):
                for i in range(15):
                    call = models.predict if i % 2 else models.predict_now
                    answer = call("m", _png(i * 9), version)
                    if answer is not None:
                        with lock:
                            results.append((answer[0].version, answer[1][0].label))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(1 + t % 2,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    assert len(results) >= 8 * 7  # every thread-path call answered
    assert set(results) == {(1, "cat"), (2, "dog")}
    assert len(models.served) <= 1
    for key in predictor.loaded():
        pool = predictor.pool(key, _never_loads)
        assert 1 <= pool.made <= predictor.per_model


def _never_loads() -> bytes:
    raise AssertionError("a loaded model was loaded again")


def test_interpreter_pool_is_bounded_and_the_inline_path_never_waits(
    tflites: tuple[bytes, bytes],
) -> None:
    cat, dog = tflites
    loads: list[str] = []

    def loader(name: str, data: bytes) -> Callable[[], bytes]:
        def load() -> bytes:
            loads.append(name)
            return data

        return load

    predictor = LiteRTPredictor(capacity=1, per_model=2)
    image = _png(5)
    assert predictor.predict_now("cat", SPEC, image) is None  # not loaded: nothing done
    assert not predictor.ready("cat", SPEC, image)
    probs = predictor.predict("cat", loader("cat", cat), SPEC, image)
    assert int(np.argmax(probs)) == 0
    pool = predictor.pool("cat", loader("cat", cat))
    with pool.borrow() as first, pool.borrow() as second:
        assert first is not second and pool.made == 2
        # Both interpreters busy: the inline path declines instead of waiting.
        assert not predictor.ready("cat", SPEC, image)
        assert predictor.predict_now("cat", SPEC, image) is None
    assert predictor.predict_now("cat", SPEC, image) == pytest.approx(probs)
    pool.record(0.0)  # the moving average is below the budget whatever the machine's speed
    assert predictor.ready("cat", SPEC, image)
    # A large image (read from its header) always goes to a worker thread.
    assert not predictor.ready("cat", SPEC, _png(5, size=2048))
    # capacity 1: loading another model drops the first, which is loaded again when needed.
    assert int(np.argmax(predictor.predict("dog", loader("dog", dog), SPEC, image))) == 1
    assert predictor.loaded() == ["dog"] and predictor.predict_now("cat", SPEC, image) is None
    predictor.predict("cat", loader("cat", cat), SPEC, image)
    assert loads == ["cat", "dog", "cat"]
