"""Client side of federated learning: what a phone app does, over gRPC or REST.

:class:`GrpcFederatedClient` and :class:`RestFederatedClient` offer the same device calls
(``register``, ``get_task``, ``push_update``, ``download``); the gRPC one also has the
administrator's (``start_session``, ``get_session``, ``rounds``, ``stop_session``). Neither
imports TensorFlow.
"""

from __future__ import annotations

import base64
import hashlib
import json
import queue
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import grpc
import httpx

from mobiletrain._proto.mobiletrain.v1 import federated_pb2, federated_pb2_grpc
from mobiletrain.client.sdk import FORMATS, Client, ClientError, find_token

CHUNK_BYTES = 1024 * 1024
"""Size of the weight chunks a device sends."""

_STATUS = {
    federated_pb2.TASK_STATUS_TASK: "task",
    federated_pb2.TASK_STATUS_WAIT: "wait",
    federated_pb2.TASK_STATUS_FINISHED: "finished",
}
_STRATEGIES = {
    "fedavg": federated_pb2.FEDERATED_STRATEGY_FEDAVG,
    "fedprox": federated_pb2.FEDERATED_STRATEGY_FEDPROX,
    "median": federated_pb2.FEDERATED_STRATEGY_MEDIAN,
    "trimmed-mean": federated_pb2.FEDERATED_STRATEGY_TRIMMED_MEAN,
}
_POLICIES = {
    "deadline": federated_pb2.STRAGGLER_POLICY_DEADLINE,
    "quorum": federated_pb2.STRAGGLER_POLICY_QUORUM,
}
_REASONS = {v: k for k, v in federated_pb2.RejectReason.items()}


@dataclass
class SessionInfo:
    """What a device learns when it registers."""

    id: str
    labels: list[str]
    files: dict[str, str]  # format -> sha256
    ondevice: dict[str, Any]
    job_id: str = ""
    state: str = ""
    model_version: int = 0
    held_out_accuracy: float | None = None
    current_round: int = 0


@dataclass
class TaskInfo:
    """A GetTask answer; ``weights`` are set with status ``task``."""

    status: str
    session_id: str
    message: str = ""
    retry_after_seconds: float = 0.0
    round: int = 0
    rounds: int = 0
    weights: bytes = b""
    tensors: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    learning_rate: float = 0.0
    local_epochs: int = 1
    batch_size: int = 0
    mu: float = 0.0
    labels: list[str] = field(default_factory=list)
    model_version: int = 0


@dataclass
class UpdateResult:
    """Whether an update counts."""

    accepted: bool
    reason: str
    message: str


class DeviceTransport(Protocol):
    """The device calls, over either transport."""

    def register(self, project: str, info: dict[str, str] | None = None) -> tuple[str, SessionInfo]:
        """Join the running session: (device id, session)."""
        ...

    def get_task(self, project: str, device_id: str, wait_seconds: float = 0.0) -> TaskInfo:
        """Ask for work (long poll)."""
        ...

    def push_update(
        self,
        project: str,
        device_id: str,
        session_id: str,
        round_number: int,
        weights: bytes,
        num_samples: int,
        metrics: dict[str, float] | None = None,
        error: str = "",
    ) -> UpdateResult:
        """Send new weights (or a failure)."""
        ...

    def download(self, session_id: str, fmt: str) -> bytes:
        """One of the session's files, checked against its sha256."""
        ...

    def get_session(self, session_id: str) -> SessionInfo:
        """The session as it is now."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def _session_from_proto(msg: Any) -> SessionInfo:
    names = {v: k for k, v in FORMATS.items()}
    return SessionInfo(
        id=msg.id,
        labels=list(msg.labels),
        files={names[a.format]: a.sha256 for a in msg.files if a.format in names},
        ondevice=json.loads(msg.ondevice_json or "{}"),
        job_id=msg.job_id,
        state=federated_pb2.SessionState.Name(msg.state).removeprefix("SESSION_STATE_").lower(),
        model_version=msg.model_version,
        held_out_accuracy=msg.held_out_accuracy if msg.HasField("held_out_accuracy") else None,
        current_round=msg.current_round,
    )


class GrpcFederatedClient:
    """Federated calls over gRPC (shares the SDK's channel, token and TLS settings)."""

    def __init__(self, server: str | None = None, token: str | None = None, **kw: Any) -> None:
        self.client = Client(server, token=token, **kw)
        self.stub = federated_pb2_grpc.FederatedServiceStub(self.client.channel)

    def close(self) -> None:
        """Close the channel."""
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Any, request: Any, timeout: float | None = None) -> Any:
        try:
            return fn(request, timeout=timeout or self.client.timeout)
        except grpc.RpcError as err:
            raise ClientError.from_rpc(err) from None

    # -- administrators ------------------------------------------------------------------------
    def start_session(self, project: str, **config: Any) -> SessionInfo:
        """Start a session; keyword arguments are FederatedConfig fields."""
        msg = federated_pb2.FederatedConfig()
        for key, value in config.items():
            if value is None:
                continue
            if key == "strategy":
                msg.strategy = _STRATEGIES[value]
            elif key == "straggler_policy":
                msg.straggler_policy = _POLICIES[value]
            elif key == "hidden":
                msg.head.hidden.extend(int(h) for h in value)
                msg.head.SetInParent()
            else:
                setattr(msg, key, value)
        request = federated_pb2.StartSessionRequest(project=project, config=msg)
        return _session_from_proto(self._call(self.stub.StartSession, request))

    def get_session(self, session_id: str) -> SessionInfo:
        """One session."""
        request = federated_pb2.GetSessionRequest(session_id=session_id)
        return _session_from_proto(self._call(self.stub.GetSession, request))

    def rounds(self, session_id: str) -> list[dict[str, Any]]:
        """The rounds with their results."""
        reply = self._call(
            self.stub.ListRounds, federated_pb2.ListRoundsRequest(session_id=session_id)
        )
        return [
            {
                "number": r.number,
                "phase": federated_pb2.RoundPhase.Name(r.phase)
                .removeprefix("ROUND_PHASE_")
                .lower(),
                "selected": r.selected,
                "accepted": r.accepted,
                "held_out_accuracy": r.held_out_accuracy
                if r.HasField("held_out_accuracy")
                else None,
                "model_version": r.model_version,
                "noise_std": r.noise_std,
                "close_reason": r.close_reason,
                "opened_at": r.opened_at.ToMicroseconds() / 1e6,
                "closed_at": r.closed_at.ToMicroseconds() / 1e6
                if r.HasField("closed_at")
                else None,
                "result": json.loads(r.result_json or "{}"),
            }
            for r in reply.rounds
        ]

    def stop_session(self, session_id: str) -> SessionInfo:
        """Cancel a session."""
        request = federated_pb2.StopSessionRequest(session_id=session_id)
        return _session_from_proto(self._call(self.stub.StopSession, request))

    # -- devices -------------------------------------------------------------------------------
    def register(self, project: str, info: dict[str, str] | None = None) -> tuple[str, SessionInfo]:
        """Join the project's running session."""
        request = federated_pb2.RegisterDeviceRequest(
            project=project,
            info=[federated_pb2.DeviceAttribute(name=k, value=v) for k, v in (info or {}).items()],
        )
        reply = self._call(self.stub.RegisterDevice, request)
        return reply.device_id, _session_from_proto(reply.session)

    def get_task(self, project: str, device_id: str, wait_seconds: float = 0.0) -> TaskInfo:
        """Header, then the weights in chunks."""
        request = federated_pb2.GetTaskRequest(
            project=project, device_id=device_id, wait_seconds=wait_seconds
        )
        try:
            stream = self.stub.GetTask(request, timeout=wait_seconds + self.client.timeout)
            header = next(stream).header
            parts = [m.chunk.data for m in stream]
        except grpc.RpcError as err:
            raise ClientError.from_rpc(err) from None
        info = TaskInfo(
            status=_STATUS.get(header.status, "wait"),
            session_id=header.session_id,
            message=header.message,
            retry_after_seconds=header.retry_after_seconds,
        )
        if header.HasField("task"):
            task = header.task
            info.round, info.rounds = task.round, task.rounds
            info.weights = b"".join(parts)
            info.tensors = [(t.name, tuple(t.shape)) for t in task.tensors]
            info.learning_rate, info.local_epochs = task.learning_rate, task.local_epochs
            info.batch_size, info.mu = task.batch_size, task.mu
            info.labels, info.model_version = list(task.labels), task.model_version
            if len(info.weights) != task.weights_size:
                raise ClientError(0, "DATA_LOSS", "the task's weights arrived incomplete")
        return info

    def push_update(
        self,
        project: str,
        device_id: str,
        session_id: str,
        round_number: int,
        weights: bytes,
        num_samples: int,
        metrics: dict[str, float] | None = None,
        error: str = "",
    ) -> UpdateResult:
        """Header, then the weights in 1 MiB chunks."""

        def requests() -> Iterator[Any]:
            yield federated_pb2.PushUpdateRequest(
                header=federated_pb2.UpdateHeader(
                    project=project,
                    device_id=device_id,
                    session_id=session_id,
                    round=round_number,
                    num_samples=num_samples,
                    dtype=federated_pb2.WEIGHTS_DTYPE_FLOAT32,
                    metrics=[
                        federated_pb2.Metric(name=k, value=float(v))
                        for k, v in (metrics or {}).items()
                    ],
                    error=error,
                )
            )
            view = memoryview(weights)
            for offset in range(0, len(view), CHUNK_BYTES):
                yield federated_pb2.PushUpdateRequest(
                    chunk=federated_pb2.WeightsChunk(
                        offset=offset, data=bytes(view[offset : offset + CHUNK_BYTES])
                    )
                )

        reply = self._call(self.stub.PushUpdate, requests())
        reason = _REASONS.get(reply.reason, "")
        reason = "" if reason == "REJECT_REASON_UNSPECIFIED" else reason
        return UpdateResult(
            reply.accepted,
            reason.removeprefix("REJECT_REASON_").lower().replace("_", "-"),
            reply.message,
        )

    def download(self, session_id: str, fmt: str) -> bytes:
        """A session file, verified against its sha256."""
        request = federated_pb2.DownloadSessionFileRequest(
            session_id=session_id, format=FORMATS[fmt]
        )
        try:
            messages = list(self.stub.DownloadSessionFile(request, timeout=600))
        except grpc.RpcError as err:
            raise ClientError.from_rpc(err) from None
        data = b"".join(m.data for m in messages[1:])
        if hashlib.sha256(data).hexdigest() != messages[0].info.sha256:
            raise ClientError(0, "DATA_LOSS", "downloaded file does not match its sha256")
        return data


class RestFederatedClient:
    """Federated device calls over REST (JSON, weights in base64)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 60.0) -> None:
        secret = find_token(token)
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)
        self.timeout = timeout

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            raise ClientError(
                int(body.get("code", 0)), str(response.status_code), str(body.get("message", ""))
            )
        return response.json()

    @staticmethod
    def _session(data: dict[str, Any]) -> SessionInfo:
        return SessionInfo(
            id=data["id"],
            labels=list(data["labels"]),
            files={f["format"]: f["sha256"] for f in data["files"]},
            ondevice=dict(data.get("ondevice") or {}),
            job_id=data["job_id"],
            state=data["state"],
            model_version=data.get("model_version") or 0,
            held_out_accuracy=data.get("held_out_accuracy"),
            current_round=data.get("current_round", 0),
        )

    def get_session(self, session_id: str) -> SessionInfo:
        """GET /v1/federated/sessions/{session_id}."""
        return self._session(self._json(self.http.get(f"/v1/federated/sessions/{session_id}")))

    def register(self, project: str, info: dict[str, str] | None = None) -> tuple[str, SessionInfo]:
        """POST /v1/projects/{project}/federated/devices."""
        data = self._json(
            self.http.post(f"/v1/projects/{project}/federated/devices", json={"info": info or {}})
        )
        return data["device_id"], self._session(data["session"])

    def get_task(self, project: str, device_id: str, wait_seconds: float = 0.0) -> TaskInfo:
        """GET /v1/projects/{project}/federated/task (long poll)."""
        data = self._json(
            self.http.get(
                f"/v1/projects/{project}/federated/task",
                params={"device_id": device_id, "wait_seconds": wait_seconds},
                timeout=wait_seconds + self.timeout,
            )
        )
        info = TaskInfo(
            status=data["status"],
            session_id=data["session_id"],
            message=data["message"],
            retry_after_seconds=data["retry_after_seconds"],
        )
        task = data.get("task")
        if task:
            info.round, info.rounds = task["round"], task["rounds"]
            info.weights = base64.b64decode(task["weights"])
            info.tensors = [(t["name"], tuple(t["shape"])) for t in task["tensors"]]
            info.learning_rate, info.local_epochs = task["learning_rate"], task["local_epochs"]
            info.batch_size, info.mu = task["batch_size"], task["mu"]
            info.labels, info.model_version = task["labels"], task.get("model_version") or 0
        return info

    def push_update(
        self,
        project: str,
        device_id: str,
        session_id: str,
        round_number: int,
        weights: bytes,
        num_samples: int,
        metrics: dict[str, float] | None = None,
        error: str = "",
    ) -> UpdateResult:
        """POST /v1/projects/{project}/federated/updates."""
        data = self._json(
            self.http.post(
                f"/v1/projects/{project}/federated/updates",
                json={
                    "device_id": device_id,
                    "session_id": session_id,
                    "round": round_number,
                    "num_samples": num_samples,
                    "weights": base64.b64encode(weights).decode("ascii"),
                    "metrics": metrics or {},
                    "error": error,
                },
            )
        )
        return UpdateResult(data["accepted"], data["reason"], data["message"])

    def download(self, session_id: str, fmt: str) -> bytes:
        """GET /v1/federated/sessions/{id}/files/{format}, verified against its ETag."""
        response = self.http.get(f"/v1/federated/sessions/{session_id}/files/{fmt}", timeout=600)
        if response.status_code >= 400:
            self._json(response)
        data = response.content
        if hashlib.sha256(data).hexdigest() != response.headers.get("x-content-sha256"):
            raise ClientError(0, "DATA_LOSS", "downloaded file does not match its sha256")
        return data


class StreamingFederatedClient:
    """The device calls over one ``Participate`` stream: the cheapest way per round.

    Same interface as :class:`GrpcFederatedClient`'s device calls; ``get_task`` ignores
    ``wait_seconds`` (the server sends work when there is some, and a wait heartbeat every
    30 s). A broken stream is reopened with the device id on the next call.
    """

    def __init__(self, server: str | None = None, token: str | None = None, **kw: Any) -> None:
        self.unary = GrpcFederatedClient(server, token=token, **kw)
        self._requests: queue.Queue[Any] | None = None
        self._responses: Any = None
        self._project = ""
        self._device_id = ""
        self._pending: Any = None  # a task header read while reopening

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the stream and close the channel."""
        if self._requests is not None:
            self._requests.put(None)
        self.unary.close()

    def _open(self, start: Any) -> None:
        requests: queue.Queue[Any] = queue.Queue()
        requests.put(federated_pb2.ParticipateRequest(start=start))

        def iterate() -> Iterator[Any]:
            while True:
                item = requests.get()
                if item is None:
                    return
                yield item

        if self._requests is not None:
            self._requests.put(None)
        self._requests = requests
        self._responses = self.unary.stub.Participate(iterate())

    def _next(self) -> Any:
        if self._responses is None:
            self._open(
                federated_pb2.ParticipateStart(project=self._project, device_id=self._device_id)
            )
        try:
            return next(self._responses)
        except grpc.RpcError as err:
            self._responses = None
            raise ClientError.from_rpc(err) from None
        except StopIteration:
            self._responses = None
            raise ClientError(0, "UNAVAILABLE", "the stream ended") from None

    def _send(self, message: Any) -> None:
        if self._requests is None or self._responses is None:
            raise ClientError(0, "UNAVAILABLE", "the stream is closed")
        self._requests.put(message)

    def register(self, project: str, info: dict[str, str] | None = None) -> tuple[str, SessionInfo]:
        """Open the stream as a new device."""
        self._project = project
        self._open(
            federated_pb2.ParticipateStart(
                project=project,
                info=[
                    federated_pb2.DeviceAttribute(name=k, value=v) for k, v in (info or {}).items()
                ],
            )
        )
        reply = self._next().registered
        self._device_id = reply.device_id
        return reply.device_id, _session_from_proto(reply.session)

    def get_task(self, project: str, device_id: str, wait_seconds: float = 0.0) -> TaskInfo:
        """The next task, wait heartbeat or end."""
        message, self._pending = self._pending, None
        if message is None:
            message = self._next()
        header = message.task
        info = TaskInfo(
            status=_STATUS.get(header.status, "wait"),
            session_id=header.session_id,
            message=header.message,
            retry_after_seconds=header.retry_after_seconds,
        )
        if header.HasField("task"):
            task = header.task
            weights = header.weights
            if len(weights) < task.weights_size:
                parts = [weights]
                size = len(weights)
                while size < task.weights_size:
                    chunk = self._next().chunk.data
                    parts.append(chunk)
                    size += len(chunk)
                weights = b"".join(parts)
            info.round, info.rounds = task.round, task.rounds
            info.weights = weights
            info.tensors = [(t.name, tuple(t.shape)) for t in task.tensors]
            info.learning_rate, info.local_epochs = task.learning_rate, task.local_epochs
            info.batch_size, info.mu = task.batch_size, task.mu
            info.labels, info.model_version = list(task.labels), task.model_version
        return info

    def push_update(
        self,
        project: str,
        device_id: str,
        session_id: str,
        round_number: int,
        weights: bytes,
        num_samples: int,
        metrics: dict[str, float] | None = None,
        error: str = "",
    ) -> UpdateResult:
        """Send the update on the stream and read its result."""
        if self._responses is None:  # reopened: the server first repeats the open task
            message = self._next()
            if message.task.task.round != round_number:
                self._pending = message
                return UpdateResult(False, "stale-round", "the round closed meanwhile")
        inline = len(weights) <= CHUNK_BYTES and not error
        self._send(
            federated_pb2.ParticipateRequest(
                update=federated_pb2.UpdateHeader(
                    project=project,
                    device_id=device_id,
                    session_id=session_id,
                    round=round_number,
                    num_samples=num_samples,
                    dtype=federated_pb2.WEIGHTS_DTYPE_FLOAT32,
                    metrics=[
                        federated_pb2.Metric(name=k, value=float(v))
                        for k, v in (metrics or {}).items()
                    ],
                    error=error,
                    weights=weights if inline else b"",
                    weights_size=0 if inline or error else len(weights),
                )
            )
        )
        if not inline and not error:
            view = memoryview(weights)
            for offset in range(0, len(view), CHUNK_BYTES):
                self._send(
                    federated_pb2.ParticipateRequest(
                        chunk=federated_pb2.WeightsChunk(
                            offset=offset, data=bytes(view[offset : offset + CHUNK_BYTES])
                        )
                    )
                )
        result = self._next().update_result
        reason = _REASONS.get(result.reason, "")
        reason = "" if reason == "REJECT_REASON_UNSPECIFIED" else reason
        return UpdateResult(
            result.accepted,
            reason.removeprefix("REJECT_REASON_").lower().replace("_", "-"),
            result.message,
        )

    def download(self, session_id: str, fmt: str) -> bytes:
        """A session file (unary call)."""
        return self.unary.download(session_id, fmt)

    def get_session(self, session_id: str) -> SessionInfo:
        """The session as it is now (unary call)."""
        return self.unary.get_session(session_id)
