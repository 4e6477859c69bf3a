"""Promote, roll back, history and release policy from the CLI, gRPC and REST, on a real server.

Versions are stored the way the worker stores them (status, decision, evaluation, model card)
with small random files, so these tests need no training; tests/unit/compute/
test_release_gate.py covers the gate with real training and LiteRT.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import httpx
import pytest
from typer.testing import CliRunner

from mobiletrain import cli
from mobiletrain._proto.mobiletrain.v1 import common_pb2, models_pb2, models_pb2_grpc
from mobiletrain.client.sdk import Client, ClientError
from mobiletrain.config import Settings
from mobiletrain.core.auth import Principal, Role, acting_as
from mobiletrain.core.evaluation import ClassScore, EvalSetInfo, Evaluation, FormatScore
from mobiletrain.core.manifest import (
    DataSnapshot,
    FileInfo,
    ModelManifest,
    ModelOutput,
    ValidationMetrics,
)
from mobiletrain.core.release import (
    ReleaseAction,
    ReleasePolicy,
    ReleaseRecord,
    Rollout,
    decide,
)
from mobiletrain.core.types import Artifact, ModelFormat, ModelVersion
from mobiletrain.server import RunningServer, start_server

LABELS = ["cat", "dog"]


@dataclass
class Env:
    server: RunningServer
    admin: str
    grpc_address: str
    http: httpx.Client
    project_id: str
    sha: dict[int, str]  # float32 sha256 per version


def _evaluation(accuracy: float) -> Evaluation:
    score = FormatScore(
        format="float32",
        accuracy=accuracy,
        macro_f1=accuracy,
        per_class=[ClassScore(lab, accuracy, accuracy, accuracy, 10) for lab in LABELS],
        confusion_matrix=[[9, 1], [2, 8]],
    )
    return Evaluation(EvalSetInfo(20, {"cat": 10, "dog": 10}, "ab" * 32), {"float32": score})


def _store_version(server: RunningServer, project_id: str, accuracy: float) -> ModelVersion:
    """A version as the worker stores it, decided by the real gate against the current one."""
    c = server.container
    project = c.store.get_project(project_id)
    assert project is not None
    current = c.models.current_version_number(project)
    current_eval = c.store.get_model_version(project_id, current).evaluation if current else None  # type: ignore[union-attr]
    evaluation = _evaluation(accuracy)
    decision = decide(
        project.release_policy or ReleasePolicy(),
        evaluation,
        current_eval,
        current,
        pinned=project.release_pinned,
    )
    data = os.urandom(500)
    sha = c.blobs.put(data)
    c.blobs.sync()
    version = c.store.next_model_version(project_id)
    card = ModelManifest(
        version=version,
        project_id=project_id,
        project_name="rel",
        job_id=f"job-{version}",
        created_at=datetime.now(UTC),
        labels=LABELS,
        input=project.input_spec.to_dict(),
        output=ModelOutput(num_classes=2),
        files={"float32": FileInfo("model-float32.tflite", sha, 500)},
        validation=ValidationMetrics({"float32": accuracy}),
        evaluation=evaluation,
        release=decision,
        dataset=DataSnapshot(80, {"cat": 40, "dog": 40}, "cd" * 32, {}),
        warnings=["accuracy 0.5000 is at chance level"] if accuracy <= 0.55 else [],
    )
    model = c.store.create_model_version(
        ModelVersion(
            project_id=project_id,
            version=version,
            job_id=card.job_id,
            created_at=card.created_at,
            metrics={"accuracy": accuracy, "tflite": {"float32": {"accuracy": accuracy}}},
            manifest=card.to_dict(),
            artifacts={ModelFormat.FLOAT32: Artifact(ModelFormat.FLOAT32, sha, 500)},
            status="candidate",
            decision=decision,
            evaluation=evaluation,
            warnings=card.warnings,
        )
    )
    if decision.promoted:
        policy = project.release_policy or ReleasePolicy()
        c.store.change_current_version(
            ReleaseRecord(
                project_id=project_id,
                version=version,
                previous_version=current,
                action=ReleaseAction.PROMOTED,
                reason=decision.reason,
                actor="release gate",
                created_at=datetime.now(UTC),
                job_id=card.job_id,
            ),
            pinned=False,
            # As the worker does: a staged rollout when the policy asks for one.
            rollout=Rollout.start(policy, version, current, datetime.now(UTC)),
        )
    return model


@pytest.fixture
def env(tmp_path) -> Iterator[Env]:  # type: ignore[no-untyped-def]
    server = start_server(Settings(data_dir=tmp_path / "data", grpc_port=0, http_port=0))
    admin = (tmp_path / "data" / "admin-token").read_text().strip()
    address = f"127.0.0.1:{server.grpc_port}"
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{server.http_port}",
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    try:
        with Client(address, token=admin) as client:
            project = client.create_project("rel", labels=LABELS)
        good = _store_version(server, project.id, 0.9)  # first version: promoted
        worse = _store_version(server, project.id, 0.5)  # worse by 0.4: candidate
        yield Env(
            server,
            admin,
            address,
            http,
            project.id,
            {
                1: good.artifacts[ModelFormat.FLOAT32].sha256,
                2: worse.artifacts[ModelFormat.FLOAT32].sha256,
            },
        )
    finally:
        http.close()
        server.stop()


def _check_update_version(env: Env) -> int:
    with grpc.insecure_channel(env.grpc_address) as channel:
        stub = models_pb2_grpc.ModelServiceStub(channel)
        resp = stub.CheckForUpdate(
            models_pb2.CheckForUpdateRequest(
                project="rel",
                format=common_pb2.MODEL_FORMAT_FLOAT32,
                current_sha256=env.sha[1],
            ),
            metadata=[("authorization", f"Bearer {env.admin}")],
        )
    rest = env.http.get(
        "/v1/projects/rel/models:check-update", params={"sha256": env.sha[1]}
    ).json()
    assert rest["version"] == resp.latest.version  # both transports agree
    return int(resp.latest.version)


def test_worse_version_is_a_candidate_everywhere(env: Env) -> None:
    listed = env.http.get("/v1/projects/rel/models").json()
    assert listed["current_version"] == 1
    by_version = {v["version"]: v for v in listed["versions"]}
    assert by_version[1]["status"] == "current" and by_version[2]["status"] == "candidate"
    assert "worse than current version 1" in by_version[2]["decision"]["reason"]
    assert by_version[2]["warnings"] and by_version[2]["eval_accuracy"] == {"float32": 0.5}
    with Client(env.grpc_address, token=env.admin) as c:
        page = c.list_versions_page("rel")
    assert page.current_version == 1
    grpc_v2 = next(v for v in page.versions if v.version == 2)
    assert grpc_v2.status == models_pb2.VERSION_STATUS_CANDIDATE
    assert grpc_v2.decision.reason == by_version[2]["decision"]["reason"]
    assert not grpc_v2.decision.promoted and grpc_v2.decision.current_accuracy == 0.9
    assert _check_update_version(env) == 1


def test_promote_and_rollback_over_grpc(env: Env) -> None:
    with Client(env.grpc_address, token=env.admin) as c:
        promoted = c.promote("rel", 2, reason="field test")
        assert promoted.version == 2 and promoted.current
        assert _check_update_version(env) == 2
        back = c.rollback("rel", reason="crashes on old phones")
        assert back.version == 1
        assert _check_update_version(env) == 1
        history = c.releases("rel")
        assert [(r.action, r.version, r.previous_version) for r in history] == [
            ("rollback", 1, 2),
            ("manual-promote", 2, 1),
            ("promoted", 1, 0),
        ]
        assert history[0].reason == "crashes on old phones" and history[2].actor == "release gate"
        with pytest.raises(ClientError) as err:
            c.rollback("rel")  # version 1 was the first: nothing before it
        assert err.value.code == 57
        state = c.set_release_policy("rel", mode="manual", min_accuracy=0.8)
        assert state.policy.mode == models_pb2.RELEASE_MODE_MANUAL
        assert state.policy.min_accuracy == 0.8 and state.policy.margin == 0.02
        with pytest.raises(ClientError) as err:
            c.set_release_policy("rel", margin=1.5)
        assert err.value.code == 56


def test_promote_rollback_pin_and_policy_over_rest(env: Env) -> None:
    http = env.http
    r = http.post("/v1/projects/rel/models/2:promote", json={"pin": True, "reason": "try"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "current"
    assert _check_update_version(env) == 2
    policy = http.get("/v1/projects/rel/release-policy").json()
    assert policy["pinned"] is True and policy["policy"]["mode"] == "auto"
    # While pinned, the gate keeps even a better version out of phones.
    better = _store_version(env.server, env.project_id, 0.99)
    assert better.decision is not None and not better.decision.promoted
    assert "pinned" in better.decision.reason
    assert http.get("/v1/projects/rel/models").json()["current_version"] == 2
    r = http.post("/v1/projects/rel/models:rollback", json={"reason": "bad"})
    assert r.status_code == 200, r.text
    releases = http.get("/v1/projects/rel/releases").json()["releases"]
    assert releases[0]["action"] == "rollback" and releases[0]["reason"] == "bad"
    put = http.put(
        "/v1/projects/rel/release-policy", json={"mode": "manual", "max_int8_drop": 0.05}
    )
    assert put.status_code == 200, put.text
    assert put.json()["policy"] == {
        "mode": "manual",
        "margin": 0.02,
        "min_accuracy": None,
        "min_per_class_recall": None,
        "max_int8_drop": 0.05,
        "rollout_percent": 100,
        "rollout_hours": None,
    }
    bad = http.put("/v1/projects/rel/release-policy", json={"margin": -1})
    assert bad.status_code == 400 and bad.json()["code"] == 56
    manifest = http.get("/v1/projects/rel/models/2/manifest").json()
    assert manifest["version"] == 2 and manifest["release"]["promoted"] is False


def test_cli_lists_shows_promotes_and_rolls_back(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.console, "width", 250)
    runner = CliRunner()
    base = ["--server", env.grpc_address, "--token", env.admin]

    listed = runner.invoke(cli.app, [*base, "models", "list", "-p", "rel"])
    assert listed.exit_code == 0, listed.output
    assert "current version: 1" in listed.output
    assert "candidate" in listed.output and "worse than current version 1" in listed.output
    assert "chance level" in listed.output

    shown = runner.invoke(cli.app, [*base, "models", "show", "-p", "rel", "--version", "2"])
    assert shown.exit_code == 0, shown.output
    assert "rel version 2" in shown.output and "kept-candidate" in shown.output
    assert "precision" in shown.output and "confusion matrix" in shown.output

    promoted = runner.invoke(
        cli.app, [*base, "models", "promote", "-p", "rel", "2", "--reason", "ok"]
    )
    assert promoted.exit_code == 0 and "version 2 is current" in promoted.output
    assert _check_update_version(env) == 2
    rolled = runner.invoke(cli.app, [*base, "models", "rollback", "-p", "rel"])
    assert rolled.exit_code == 0 and "version 1 is current" in rolled.output
    assert _check_update_version(env) == 1
    history = runner.invoke(cli.app, [*base, "models", "history", "-p", "rel"])
    assert "rollback" in history.output and "manual-promote" in history.output
    again = runner.invoke(cli.app, [*base, "models", "rollback", "-p", "rel"])
    assert again.exit_code == 1 and "error 57" in again.output
    policy = runner.invoke(cli.app, [*base, "models", "policy", "-p", "rel", "--mode", "manual"])
    assert policy.exit_code == 0 and "mode: manual" in policy.output


def _device_versions(env: Env, tokens: list[str]) -> list[int]:
    """The version CheckForUpdate gives each device token (core call as that device)."""
    out = []
    for token_id in tokens:
        device = Principal(token_id=token_id, role=Role.DEVICE, project_id=env.project_id)
        with acting_as(device):
            out.append(env.server.container.models.check_update("rel", "float32")[1].version)
    return out


def test_staged_rollout_serves_a_deterministic_quarter_until_completed(env: Env) -> None:
    http = env.http
    put = http.put("/v1/projects/rel/release-policy", json={"rollout_percent": 25})
    assert put.status_code == 200, put.text
    better = _store_version(env.server, env.project_id, 0.95)  # the gate promotes it
    assert better.decision is not None and better.decision.promoted
    state = http.get("/v1/projects/rel/release-policy").json()
    assert state["rollout"]["version"] == 3 and state["rollout"]["previous_version"] == 1
    assert state["rollout"]["percent"] == 25 and state["rollout"]["complete_at"] is None

    tokens = [f"device-{i}" for i in range(200)]
    first = _device_versions(env, tokens)
    assert set(first) == {1, 3}
    share = first.count(3)
    assert 30 <= share <= 70, share  # about a quarter of 200
    assert _device_versions(env, tokens) == first  # deterministic per token

    # Over gRPC with a real device token: its answer follows its own share.
    with Client(env.grpc_address, token=env.admin) as admin:
        made, secret = admin.create_token("device", project="rel", name="phone")
    with Client(env.grpc_address, token=secret) as phone:
        seen = phone.check_for_update("rel", "float32").latest.version
    expected = 3 if Rollout(3, 1, 25, datetime.now(UTC)).serves_new(made.id) else 1
    assert seen == expected
    # Admins (and the dashboard) see the new current version.
    assert http.get("/v1/projects/rel/models").json()["current_version"] == 3

    # The manual step: promoting the version by hand completes the rollout.
    assert http.post("/v1/projects/rel/models/3:promote", json={}).status_code == 200
    assert set(_device_versions(env, tokens)) == {3}
    assert http.get("/v1/projects/rel/release-policy").json()["rollout"] is None


def test_staged_rollout_completes_after_its_delay(env: Env) -> None:
    env.server.container.models.set_policy(
        "rel", ReleasePolicy(rollout_percent=10, rollout_hours=0.0)
    )
    _store_version(env.server, env.project_id, 0.95)
    # A zero-hour rollout is complete at once: every device follows.
    assert set(_device_versions(env, [f"d{i}" for i in range(50)])) == {3}
