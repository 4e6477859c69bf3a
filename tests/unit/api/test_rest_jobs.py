"""REST training jobs and their progress events (Server-Sent Events and JSON polling)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mobiletrain.api.rest.app import create_app
from mobiletrain.config import Settings
from mobiletrain.container import Container
from mobiletrain.core.types import EventKind, Hyperparameters, Job, JobEvent, JobState
from mobiletrain.wiring import build_container


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, Container]]:
    container = build_container(Settings(data_dir=tmp_path / "data"))
    container.hub.start()  # event wake-ups; no executor, so nothing trains
    try:
        admin = container.tokens.create_bootstrap_admin()
        headers = {"Authorization": f"Bearer {admin}"}
        with TestClient(create_app(container), headers=headers) as client:
            yield client, container
    finally:
        container.close()


def assert_error(response: Any, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and response.headers["x-mobiletrain-error-code"] == str(code)
    return body


def parse_sse(text: str) -> tuple[list[dict[str, str]], list[str]]:
    """SSE text → (messages with id/event/data, comment lines)."""
    messages: list[dict[str, str]] = []
    comments: list[str] = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line:
                continue
            if line.startswith(":"):
                comments.append(line[1:].strip())
                continue
            key, _, value = line.partition(":")
            fields[key] = value[1:] if value.startswith(" ") else value
        if "data" in fields:
            messages.append(fields)
    return messages, comments


def make_job(container: Container, project_name: str = "jobs") -> Job:
    """A job row created directly in the store (no executor involved)."""
    project = container.projects.create(project_name)
    job = Job(
        id=str(uuid.uuid4()),
        project_id=project.id,
        state=JobState.QUEUED,
        hyperparameters=Hyperparameters(epochs=2),
        created_at=datetime.now(UTC),
    )
    return container.store.create_job(job)


def emit(container: Container, job: Job, kind: EventKind, **data: Any) -> None:
    container.store.append_event(job.id, kind, data)
    container.hub.notify()


def run_to_success(container: Container, job: Job) -> None:
    """Events 1..5: queued, running, progress, epoch, succeeded (state before its event)."""
    emit(container, job, EventKind.STATE, state="queued")
    container.store.claim_job(job.id)
    emit(container, job, EventKind.STATE, state="running")
    emit(container, job, EventKind.PROGRESS, epoch=1, epochs=2, batch=1, batches=4)
    emit(container, job, EventKind.EPOCH, epoch=1, epochs=2, loss=0.5, accuracy=0.75)
    container.store.finish_job(job.id, JobState.SUCCEEDED, model_version=1)
    emit(container, job, EventKind.STATE, state="succeeded", model_version=1)


def upload(client: TestClient, project: str, images: list[bytes], labels: list[str]) -> None:
    files = [("files", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    r = client.post(f"/v1/projects/{project}/samples", files=files, data={"labels": labels})
    assert r.json()["accepted"] == len(images), r.text


# --- jobs ----------------------------------------------------------------------------------


def test_start_job_needs_enough_data(
    env: tuple[TestClient, Container], make_image: Callable[..., bytes]
) -> None:
    client, _ = env
    client.post("/v1/projects", json={"name": "p"})
    assert_error(client.post("/v1/projects/p/jobs"), 409, 42)
    upload(client, "p", [make_image(1), make_image(2), make_image(3)], ["a", "a", "b"])
    body = assert_error(client.post("/v1/projects/p/jobs", json={}), 409, 42)
    assert body["error"] == "not_enough_data"
    assert_error(client.post("/v1/projects/nope/jobs"), 404, 10)


def test_start_list_get_and_cancel_job(
    env: tuple[TestClient, Container], make_image: Callable[..., bytes]
) -> None:
    client, _ = env
    client.post("/v1/projects", json={"name": "p"})
    upload(client, "p", [make_image(i) for i in range(4)], ["a", "a", "b", "b"])

    assert_error(client.post("/v1/projects/p/jobs", json={"epochs": 0}), 400, 41)
    assert_error(client.post("/v1/projects/p/jobs", json={"epochs": 1, "colour": 1}), 400, 41)
    assert_error(client.post("/v1/projects/p/jobs", json={"architecture": "resnet"}), 400, 41)
    assert_error(client.post("/v1/projects/p/jobs", json={"formats": ["float64"]}), 400, 52)
    assert_error(client.post("/v1/projects/p/jobs", json={"epochs": "many"}), 400, 2)

    r = client.post(
        "/v1/projects/p/jobs", json={"epochs": 3, "learning_rate": None, "formats": ["int8"]}
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["state"] == "queued" and job["attempts"] == 0 and job["model_version"] is None
    hp = job["hyperparameters"]
    assert hp["epochs"] == 3 and hp["learning_rate"] == 0.001 and hp["batch_size"] == 32
    assert hp["formats"] == ["keras", "int8"] and hp["architecture"] == "small-cnn"

    second = client.post("/v1/projects/p/jobs").json()  # no body: all defaults
    assert second["hyperparameters"]["epochs"] == 10

    listed = client.get("/v1/projects/p/jobs").json()
    assert [j["id"] for j in listed["jobs"]] == [second["id"], job["id"]]
    page = client.get("/v1/projects/p/jobs", params={"page_size": 1}).json()
    assert len(page["jobs"]) == 1 and page["next_page_token"]
    assert client.get(f"/v1/jobs/{job['id']}").json() == job

    cancelled = client.post(f"/v1/jobs/{job['id']}:cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["cancel_requested"]
    assert_error(client.post(f"/v1/jobs/{job['id']}:cancel"), 409, 43)
    assert_error(client.get("/v1/jobs/nope"), 404, 40)
    assert_error(client.post("/v1/jobs/nope:cancel"), 404, 40)

    events = client.get(f"/v1/jobs/{job['id']}/events", params={"stream": "false"}).json()
    assert [e["data"]["state"] for e in events["events"]] == ["queued", "cancelled"]
    assert events["finished"] is True and events["state"] == "cancelled"


# --- Server-Sent Events --------------------------------------------------------------------


def test_sse_stream_of_a_finished_job(env: tuple[TestClient, Container]) -> None:
    client, container = env
    job = make_job(container)
    run_to_success(container, job)
    r = client.get(f"/v1/jobs/{job.id}/events")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    messages, _ = parse_sse(r.text)
    assert [m["id"] for m in messages] == ["1", "2", "3", "4", "5"]
    assert [m["event"] for m in messages] == ["state", "state", "progress", "epoch", "state"]
    payloads = [json.loads(m["data"]) for m in messages]
    assert [p["seq"] for p in payloads] == [1, 2, 3, 4, 5]
    assert all(p["job_id"] == job.id for p in payloads)
    assert payloads[3]["kind"] == "epoch" and payloads[3]["data"]["accuracy"] == 0.75
    assert payloads[4]["data"] == {"state": "succeeded", "model_version": 1}
    assert r.text.startswith("retry: ")


def test_sse_resumes_after_last_event_id(env: tuple[TestClient, Container]) -> None:
    client, container = env
    job = make_job(container)
    run_to_success(container, job)
    url = f"/v1/jobs/{job.id}/events"
    by_header, _ = parse_sse(client.get(url, headers={"Last-Event-ID": "3"}).text)
    assert [m["id"] for m in by_header] == ["4", "5"]
    by_query, _ = parse_sse(client.get(url, params={"after_seq": 3}).text)
    assert [m["id"] for m in by_query] == ["4", "5"]
    # The header (sent by a reconnecting EventSource) wins over the original query.
    mixed, _ = parse_sse(
        client.get(url, params={"after_seq": 1}, headers={"Last-Event-ID": "4"}).text
    )
    assert [m["id"] for m in mixed] == ["5"]
    # Everything received: 204 tells EventSource clients not to reconnect.
    done = client.get(url, headers={"Last-Event-ID": "5"})
    assert done.status_code == 204 and done.content == b""
    assert_error(client.get(url, headers={"Last-Event-ID": "abc"}), 400, 2)
    assert_error(client.get(url, params={"after_seq": -1}), 400, 2)
    assert_error(client.get("/v1/jobs/nope/events"), 404, 40)


@pytest.mark.timeout(60)
def test_sse_delivers_live_events_once_and_ends_at_the_final_state(
    env: tuple[TestClient, Container],
) -> None:
    client, container = env
    job = make_job(container)
    emit(container, job, EventKind.STATE, state="queued")

    def later() -> None:
        time.sleep(0.3)
        container.store.claim_job(job.id)
        emit(container, job, EventKind.STATE, state="running")
        for epoch in (1, 2):
            time.sleep(0.05)
            emit(container, job, EventKind.EPOCH, epoch=epoch, epochs=2, loss=1.0 / epoch)
        container.store.finish_job(job.id, JobState.FAILED, error="out of memory")
        emit(container, job, EventKind.STATE, state="failed", error="out of memory")

    writer = threading.Thread(target=later)
    started = time.monotonic()
    with client.stream("GET", f"/v1/jobs/{job.id}/events") as r:
        assert r.status_code == 200
        writer.start()
        text = "".join(r.iter_text())  # returns only when the server closes the stream
    writer.join()
    assert time.monotonic() - started < 10
    messages, _ = parse_sse(text)
    assert [int(m["id"]) for m in messages] == [1, 2, 3, 4, 5]
    assert [m["event"] for m in messages] == ["state", "state", "epoch", "epoch", "state"]
    assert json.loads(messages[-1]["data"])["data"] == {"state": "failed", "error": "out of memory"}


@pytest.mark.timeout(60)
def test_client_disconnect_stops_the_watch(
    env: tuple[TestClient, Container], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, container = env
    job = make_job(container)
    emit(container, job, EventKind.STATE, state="queued")
    seen: dict[str, Any] = {"closed": threading.Event()}
    real_watch = container.training.watch

    def spy(
        job_id: str, after_seq: int = 0, cancelled: threading.Event | None = None
    ) -> Iterator[JobEvent | None]:
        seen["cancelled"] = cancelled
        inner = real_watch(job_id, after_seq, cancelled)

        def wrapped() -> Iterator[JobEvent | None]:
            try:
                yield from inner
            finally:
                seen["closed"].set()

        return wrapped()

    monkeypatch.setattr(container.training, "watch", spy)
    with client.stream("GET", f"/v1/jobs/{job.id}/events") as r:
        lines = r.iter_lines()
        while not next(lines).startswith("id: 1"):
            pass
        left = time.monotonic()
    # The job never ends, yet the server-side watch stops soon after the client left
    # (well before the 15 s heartbeat would have noticed a dead connection).
    assert seen["closed"].wait(5), "watch still running after the client disconnected"
    assert time.monotonic() - left < 5
    assert seen["cancelled"] is not None and seen["cancelled"].is_set()


def test_heartbeats_are_comments(
    env: tuple[TestClient, Container], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, container = env
    job = make_job(container)
    event = JobEvent(job.id, 1, EventKind.LOG, {"message": "hi"}, datetime.now(UTC))

    def fake_watch(*_args: Any, **_kwargs: Any) -> Iterator[JobEvent | None]:
        return iter([None, event, None])

    monkeypatch.setattr(container.training, "watch", fake_watch)
    text = client.get(f"/v1/jobs/{job.id}/events").text
    messages, comments = parse_sse(text)
    assert comments == ["keep-alive", "keep-alive"]
    assert [m["event"] for m in messages] == ["log"]
    assert ": keep-alive\n\n" in text


def test_polling_events_as_json(env: tuple[TestClient, Container]) -> None:
    client, container = env
    job = make_job(container)
    url = f"/v1/jobs/{job.id}/events"
    emit(container, job, EventKind.STATE, state="queued")
    container.store.claim_job(job.id)
    emit(container, job, EventKind.STATE, state="running")
    first = client.get(url, params={"stream": "false"}).json()
    assert [e["seq"] for e in first["events"]] == [1, 2]
    assert first["next_after_seq"] == 2 and first["finished"] is False
    assert first["state"] == "running"
    idle = client.get(url, params={"stream": "false", "after_seq": 2}).json()
    assert idle["events"] == [] and idle["next_after_seq"] == 2 and not idle["finished"]

    emit(container, job, EventKind.LOG, message="training")
    container.store.finish_job(job.id, JobState.SUCCEEDED, model_version=1)
    emit(container, job, EventKind.STATE, state="succeeded", model_version=1)
    page = client.get(url, params={"stream": "false", "after_seq": 2, "page_size": 1}).json()
    assert [e["kind"] for e in page["events"]] == ["log"] and page["finished"] is False
    rest = client.get(url, params={"stream": "false", "after_seq": 3}).json()
    assert [e["seq"] for e in rest["events"]] == [4] and rest["finished"] is True
    after_end = client.get(url, params={"stream": "false", "after_seq": 4}).json()
    assert after_end["events"] == [] and after_end["finished"] is True
    # A page size is a maximum: above the server's it is the server's (as over gRPC).
    clamped = client.get(url, params={"stream": "false", "page_size": 5000})
    assert [e["seq"] for e in clamped.json()["events"]] == [1, 2, 3, 4]
    assert_error(client.get(url, params={"stream": "false", "page_size": -1}), 400, 30)
