"""``mobiletrain.v1.FederatedService``: the gRPC adapter of the federated sessions.

Weights travel as raw little-endian float32 bytes in 1 MiB ``WeightsChunk`` messages, so a
model of any size stays under the message size cap. A ``Participate`` stream's update is read
only once a thread of the update pool can take it (:data:`~mobiletrain.api.longpoll.UPDATE_THREADS`
streams at once), and then at most :data:`UPDATE_READ_AHEAD` chunks ahead of the core (which
decodes a few at a time), so many devices pushing at once do not pile up their updates in
server memory: HTTP/2 flow control holds the rest back in the devices. (Reading every stream
as it came let 50 devices × 10 MB sit in the server at once.)
The chunk messages of the global weights are built once per round and sent to every device.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from mobiletrain._proto.mobiletrain.v1 import common_pb2, federated_pb2, federated_pb2_grpc
from mobiletrain.api import longpoll
from mobiletrain.api.federated_access import federated_service as _service
from mobiletrain.api.grpc import serde
from mobiletrain.api.grpc.bridge import CallEnded, RequestPump
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import ModelFormat
from mobiletrain.federated.device import AssignmentReply, AssignmentStatus
from mobiletrain.federated.records import FederatedSession
from mobiletrain.federated.service import FederatedService

if TYPE_CHECKING:
    from mobiletrain.container import Container

WEIGHTS_CHUNK_BYTES = 1024 * 1024
"""Size of the WeightsChunk messages the server sends (and the most sent inline)."""
PARTICIPATE_WAIT_SECONDS = 30.0
"""How long a Participate stream waits for work before it sends a WAIT heartbeat."""
UPDATE_READ_AHEAD = 4
"""Chunks of an update read from a Participate stream ahead of the core."""


def _session_to_proto(
    service: FederatedService, session: FederatedSession
) -> federated_pb2.FederatedSession:
    return serde.federated_session_to_proto(session, service.weights_size(session))


# The wire keeps its names (GetTask, TaskMessage, TaskHeader, FederatedTask, TaskStatus): they are
# public and frozen. In Python a device's round work is an *assignment*; "task" means only a
# project's task type (image, audio, sensor classification).
_ASSIGNMENT_STATUSES: dict[AssignmentStatus, federated_pb2.TaskStatus] = {
    AssignmentStatus.TASK: federated_pb2.TASK_STATUS_TASK,
    AssignmentStatus.WAIT: federated_pb2.TASK_STATUS_WAIT,
    AssignmentStatus.FINISHED: federated_pb2.TASK_STATUS_FINISHED,
}


def assignment_header_to_proto(reply: AssignmentReply) -> federated_pb2.TaskHeader:
    """The answer to a device asking for work → the wire's ``TaskHeader`` (the weights travel
    in the chunks after it, or inline in a Participate stream)."""
    msg = federated_pb2.TaskHeader(
        status=_ASSIGNMENT_STATUSES[reply.status],
        session_id=reply.session_id,
        message=reply.message,
        retry_after_seconds=reply.retry_after_seconds,
    )
    work = reply.assignment
    if work is not None:
        order = list(ModelFormat)
        msg.task.CopyFrom(
            federated_pb2.FederatedTask(
                session_id=work.session_id,
                round=work.round,
                rounds=work.rounds,
                deadline=serde.timestamp_to_proto(work.deadline),
                tensors=[
                    federated_pb2.WeightTensor(name=name, shape=list(shape))
                    for name, shape in work.tensors
                ],
                weights_size=len(work.weights),
                learning_rate=work.learning_rate,
                local_epochs=work.local_epochs,
                batch_size=work.batch_size,
                mu=work.mu,
                labels=list(work.labels),
                files=[
                    common_pb2.Artifact(
                        format=serde.model_format_to_proto(ModelFormat(name)),
                        size=int(work.files[name]["size"]),
                        sha256=str(work.files[name]["sha256"]),
                    )
                    for name in sorted(work.files, key=lambda n: order.index(ModelFormat(n)))
                ],
                model_version=work.model_version or 0,
            )
        )
    return msg


def update_chunks(requests: Iterator[federated_pb2.PushUpdateRequest]) -> Iterator[bytes]:
    """The weight bytes of a PushUpdate stream after its header, checking the offsets."""
    expected = 0
    for request in requests:
        if request.WhichOneof("payload") != "chunk":
            raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "only the first message is a header")
        if request.chunk.offset != expected:
            raise MobiletrainError(
                ErrorCode.INVALID_ARGUMENT,
                f"chunk offset {request.chunk.offset}, expected {expected}",
            )
        expected += len(request.chunk.data)
        yield request.chunk.data


class FederatedServicer(federated_pb2_grpc.FederatedServiceServicer):
    """Thin adapter over :class:`~mobiletrain.federated.service.FederatedService`."""

    def __init__(self, container: Container) -> None:
        self._c = container
        # The chunk messages of the current global weights, serialised once per round for
        # every device (one list per message type).
        self._chunks: dict[type, tuple[bytes, list[bytes]]] = {}
        self._chunks_lock = threading.Lock()
        self._update_slots: asyncio.Semaphore | None = None

    def _weight_chunks(self, weights: bytes, message: type) -> list[bytes]:
        """``message(chunk=WeightsChunk(...))`` for every chunk of ``weights``, serialised
        once and cached: the response serializer sends bytes as they are, so 50 devices of a
        10 MB model cost 10 serialisations a round, not 500 (each a fresh 1 MiB copy)."""
        with self._chunks_lock:
            cached, chunks = self._chunks.get(message, (b"", []))
            if cached is not weights:
                view = memoryview(weights)
                chunks = [
                    message(
                        chunk=federated_pb2.WeightsChunk(
                            offset=i, data=bytes(view[i : i + WEIGHTS_CHUNK_BYTES])
                        )
                    ).SerializeToString()
                    for i in range(0, len(view), WEIGHTS_CHUNK_BYTES)
                ]
                self._chunks[message] = (weights, chunks)
            return chunks

    def _slots(self) -> asyncio.Semaphore:
        """The Participate streams whose update is being read (made on the server's loop)."""
        if self._update_slots is None:
            self._update_slots = asyncio.Semaphore(longpoll.UPDATE_THREADS)
        return self._update_slots

    def StartSession(
        self, request: federated_pb2.StartSessionRequest, context: grpc.ServicerContext
    ) -> federated_pb2.FederatedSession:
        """Start a session."""
        service = _service(self._c)
        config = serde.federated_config_from_proto(
            request.config if request.HasField("config") else None
        )
        return _session_to_proto(service, service.start_session(request.project, config))

    def GetSession(
        self, request: federated_pb2.GetSessionRequest, context: grpc.ServicerContext
    ) -> federated_pb2.FederatedSession:
        """One session."""
        service = _service(self._c)
        return _session_to_proto(service, service.get_session(request.session_id))

    def ListSessions(
        self, request: federated_pb2.ListSessionsRequest, context: grpc.ServicerContext
    ) -> federated_pb2.ListSessionsResponse:
        """A project's sessions."""
        service = _service(self._c)
        return federated_pb2.ListSessionsResponse(
            sessions=[_session_to_proto(service, s) for s in service.list_sessions(request.project)]
        )

    def StopSession(
        self, request: federated_pb2.StopSessionRequest, context: grpc.ServicerContext
    ) -> federated_pb2.FederatedSession:
        """Cancel a session."""
        service = _service(self._c)
        return _session_to_proto(service, service.stop_session(request.session_id))

    def ListRounds(
        self, request: federated_pb2.ListRoundsRequest, context: grpc.ServicerContext
    ) -> federated_pb2.ListRoundsResponse:
        """A session's rounds."""
        rounds = _service(self._c).rounds(request.session_id)
        return federated_pb2.ListRoundsResponse(
            rounds=[serde.federated_round_to_proto(r) for r in rounds]
        )

    def DownloadSessionFile(
        self, request: federated_pb2.DownloadSessionFileRequest, context: grpc.ServicerContext
    ) -> Iterator[federated_pb2.SessionFileChunk]:
        """File info, then the bytes from ``offset``."""
        service = _service(self._c)
        fmt = serde.model_format_from_proto(request.format)
        artifact = service.file(request.session_id, fmt.value)
        chunks = service.read_file(artifact, request.offset)
        yield federated_pb2.SessionFileChunk(info=serde.artifact_to_proto(artifact))
        offset = request.offset
        for data in chunks:
            yield federated_pb2.SessionFileChunk(offset=offset, data=data)
            offset += len(data)

    def RegisterDevice(
        self, request: federated_pb2.RegisterDeviceRequest, context: grpc.ServicerContext
    ) -> federated_pb2.RegisterDeviceResponse:
        """Join the project's running session."""
        service = _service(self._c)
        session, device_id = service.register(
            request.project, {a.name: a.value for a in request.info}
        )
        return federated_pb2.RegisterDeviceResponse(
            device_id=device_id, session=_session_to_proto(service, session)
        )

    async def GetTask(
        self, request: federated_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[federated_pb2.TaskMessage | bytes]:
        """Task header, then the global weights in chunks.

        Asynchronous: a device waiting for work holds no handler thread (see ``api.longpoll``).
        """
        reply = await longpoll.get_assignment(
            _service(self._c), request.project, request.device_id, request.wait_seconds
        )
        yield federated_pb2.TaskMessage(header=assignment_header_to_proto(reply))
        if reply.assignment is None:
            return
        for message in self._weight_chunks(reply.assignment.weights, federated_pb2.TaskMessage):
            yield message

    def PushUpdate(
        self,
        request_iterator: Iterator[federated_pb2.PushUpdateRequest],
        context: grpc.ServicerContext,
    ) -> federated_pb2.PushUpdateResponse:
        """Header first, then the weights; the core reads the chunks as it needs them."""
        requests = iter(request_iterator)
        first = next(requests, None)
        if first is None or first.WhichOneof("payload") != "header":
            raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "the first message must be a header")
        header = first.header
        reply = _service(self._c).push_update(
            header.project,
            header.device_id,
            header.session_id,
            header.round,
            update_chunks(requests),
            int(header.num_samples),
            dtype=serde.weights_dtype_from_proto(header.dtype),
            metrics={m.name: m.value for m in header.metrics},
            error=header.error,
        )
        return serde.update_reply_to_proto(reply)

    async def Participate(
        self,
        request_iterator: AsyncIterator[federated_pb2.ParticipateRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[federated_pb2.ParticipateResponse | bytes]:
        """The device loop on one stream: task → update → result, until the session ends.

        Asynchronous: waiting for work (see ``api.longpoll``) and for the device's next message
        hold no thread; registering and taking in an update run in the update pool.
        """
        service = _service(self._c)
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None or first.WhichOneof("payload") != "start":
            raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "the first message must be a start")
        project, device_id = first.start.project, first.start.device_id
        if not device_id:
            info = {a.name: a.value for a in first.start.info}
            session, device_id = await longpoll.run_update(service.register, project, info)
            yield federated_pb2.ParticipateResponse(
                registered=federated_pb2.RegisterDeviceResponse(
                    device_id=device_id, session=_session_to_proto(service, session)
                )
            )
        while True:
            reply = await longpoll.get_assignment(
                service, project, device_id, PARTICIPATE_WAIT_SECONDS
            )
            header = assignment_header_to_proto(reply)
            weights = reply.assignment.weights if reply.assignment is not None else b""
            if len(weights) <= WEIGHTS_CHUNK_BYTES:
                header.weights = weights
                yield federated_pb2.ParticipateResponse(task=header)
            else:
                yield federated_pb2.ParticipateResponse(task=header)
                for chunk in self._weight_chunks(weights, federated_pb2.ParticipateResponse):
                    yield chunk
            if reply.assignment is None:
                if header.status == federated_pb2.TASK_STATUS_FINISHED:
                    return
                continue
            message = await anext(requests, None)
            if message is None:
                return  # the device hung up
            if message.WhichOneof("payload") != "update":
                raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "expected an update header")
            result = await self._take_update(service, project, device_id, message.update, requests)
            yield federated_pb2.ParticipateResponse(
                update_result=serde.update_reply_to_proto(result)
            )

    async def _take_update(
        self,
        service: FederatedService,
        project: str,
        device_id: str,
        update: federated_pb2.UpdateHeader,
        requests: AsyncIterator[federated_pb2.ParticipateRequest],
    ) -> Any:
        """Push one update of a Participate stream: inline weights, or chunks read from the
        stream on the loop and handed to the core's thread as it asks for them."""

        def push(data: bytes | Iterator[bytes]) -> Any:
            result = service.push_update(
                update.project or project,
                device_id,
                update.session_id,
                update.round,
                data,
                int(update.num_samples),
                dtype=serde.weights_dtype_from_proto(update.dtype),
                metrics={m.name: m.value for m in update.metrics},
                error=update.error,
            )
            if not isinstance(data, bytes):
                for _ in data:  # a rejected update's chunks are read and dropped
                    pass
            return result

        if update.weights or not update.weights_size:
            return await longpoll.run_update(push, bytes(update.weights))
        # The stream's chunks stay in the device (flow control) until a thread can take them.
        async with self._slots():
            pump = RequestPump(_sized_chunks(requests, update.weights_size), UPDATE_READ_AHEAD)
            pumping = asyncio.create_task(pump.run())
            try:
                # A generator: once the pump is exhausted it stays so (the drain asks again).
                return await longpoll.run_update(push, (chunk for chunk in pump))
            except CallEnded:
                # The chunks were missing or malformed: that error, not "the call ended".
                if pumping.done() and not pumping.cancelled():
                    failure = pumping.exception()
                    if isinstance(failure, MobiletrainError):
                        raise failure from None
                raise
            finally:
                if not pumping.done():
                    pumping.cancel()
                with contextlib.suppress(BaseException):
                    await pumping


async def _sized_chunks(
    requests: AsyncIterator[federated_pb2.ParticipateRequest], size: int
) -> AsyncIterator[bytes]:
    """Exactly ``size`` bytes of chunks from a Participate stream."""
    received = 0
    while received < size:
        message = await anext(requests, None)
        if message is None or message.WhichOneof("payload") != "chunk":
            raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "the update's chunks are missing")
        if message.chunk.offset != received:
            raise MobiletrainError(
                ErrorCode.INVALID_ARGUMENT,
                f"chunk offset {message.chunk.offset}, expected {received}",
            )
        received += len(message.chunk.data)
        yield message.chunk.data
