"""Builds the gRPC server: the mobiletrain services, health checking and reflection.

The server is ``grpc.aio`` on an event loop of its own thread, so that calls that mostly wait
(``WatchJob``) hold no thread; synchronous servicer code runs in a pool of ``grpc_threads``
threads (see :mod:`.bridge`). :class:`GrpcServer` gives it the synchronous ``start`` / ``stop``
of the rest of the program.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mobiletrain._proto.mobiletrain.v1 import (
    datasets_pb2,
    datasets_pb2_grpc,
    federated_pb2,
    federated_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    projects_pb2,
    projects_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from mobiletrain.api import longpoll
from mobiletrain.api.grpc.admission import Admission
from mobiletrain.api.grpc.deadlines import DeadlinePolicy
from mobiletrain.api.grpc.federated import FederatedServicer
from mobiletrain.api.grpc.interceptor import CallInterceptor
from mobiletrain.api.grpc.reflection import enable_reflection
from mobiletrain.api.grpc.servicers import (
    DatasetServicer,
    ModelServicer,
    ProjectServicer,
    TokenServicer,
    TrainingServicer,
)
from mobiletrain.api.pools import CountingThreadPool
from mobiletrain.core.ratelimit import RateLimiter

if TYPE_CHECKING:
    from mobiletrain.container import Container

SERVICE_NAMES: tuple[str, ...] = (
    projects_pb2.DESCRIPTOR.services_by_name["ProjectService"].full_name,
    datasets_pb2.DESCRIPTOR.services_by_name["DatasetService"].full_name,
    training_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name,
    models_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
    tokens_pb2.DESCRIPTOR.services_by_name["TokenService"].full_name,
    federated_pb2.DESCRIPTOR.services_by_name["FederatedService"].full_name,
)
"""Full names of the mobiletrain services, e.g. ``mobiletrain.v1.ProjectService``."""

# Keepalive for phones: the server pings a connection with calls in flight once a minute and
# drops it if no answer comes within 20 s, so a phone that vanished mid-WatchJob frees its
# handler thread. Clients may ping (also while idle, e.g. to keep a NAT mapping) as often as
# every 10 s without being sent GOAWAY "too many pings".
KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 0),
)


MAX_METADATA_BYTES = 16 * 1024
"""Most bytes of request metadata (gRPC's headers) a call may send; a larger one is refused by
gRPC before any handler runs (RESOURCE_EXHAUSTED)."""


TRANSPORT_MESSAGE_FACTOR = 2
"""gRPC's own receive limit is this many times ``grpc_max_message_bytes``: a message between the
two reaches the interceptor, which refuses it with BODY_TOO_LARGE (code 76) and the error-code
trailer; only one over gRPC's limit is refused by gRPC itself, without the trailer."""


STREAM_WINDOW_BYTES = 1024 * 1024
"""The HTTP/2 receive window of each stream (see ``server_options``)."""


def server_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    """Channel arguments of the server: message and metadata size caps, keepalive, exclusive
    port."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes * TRANSPORT_MESSAGE_FACTOR),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_metadata_size", MAX_METADATA_BYTES),
        *KEEPALIVE_OPTIONS,
        # Never share a port with another process: binding a taken port must fail.
        ("grpc.so_reuseport", 0),
        # gRPC core cancels a call the server has not picked up within this time (default 30 s).
        # Under load (thousands of watchers and uploaders) the loop accepts calls late and queued
        # uploads died at 30 s; a queued call now waits, and still ends at its own deadline.
        ("grpc.server_max_unrequested_time_in_server", 600),
        # HTTP/2 flow control bounds what a stream the server is not reading yet may buffer
        # here: a fixed 1 MiB window per stream instead of one grown from the measured
        # bandwidth-delay product (several MiB each on loopback). With 50 devices pushing
        # 10 MB updates at once, BDP-grown windows held ~300 MB of not-yet-read updates in the
        # server (issue 18, docs/benchmarks.md); 1 MiB still fills a 100 Mbit/s link at 80 ms.
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
    ]


T = TypeVar("T")


class GrpcServer:
    """An asyncio gRPC server driven from synchronous code (its loop runs in its own thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor) -> None:
        self._loop = loop
        self._executor = executor
        self._server: grpc.aio.Server | None = None
        self._stopped = threading.Event()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def start(self) -> None:
        """Start serving."""
        assert self._server is not None
        self.run(self._server.start())

    def stop(self, grace: float | None = None) -> threading.Event:
        """Stop serving (calls in flight get ``grace`` seconds); set the event when done."""
        if self._stopped.is_set():
            return self._stopped
        try:
            if self._server is not None and self._loop.is_running():
                self.run(self._server.stop(grace))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._stopped.set()
        return self._stopped


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The server's event loop, until ``stop``; then its resources are released."""
    loop.run_forever()
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


STORAGE_HEALTH_SERVICE = "mobiletrain.storage"
"""Health service name that is NOT_SERVING while the server is degraded (storage below its
reserve, samples with lost bytes); the whole server ("") stays SERVING."""

DEGRADED_METADATA_KEY = "mobiletrain-degraded"
"""Trailing metadata of a health Check while degraded: the reasons, one value each."""


class _HealthServicer(health.aio.HealthServicer):  # type: ignore[misc,name-defined]
    """The standard health service, plus the server's degraded reasons (see
    :data:`STORAGE_HEALTH_SERVICE`, :data:`DEGRADED_METADATA_KEY`)."""

    def __init__(self, container: Container) -> None:
        super().__init__()
        self._container = container

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        """Answer from the live reasons (statvfs is cached, so this is cheap)."""
        reasons = self._container.health()
        if reasons:
            context.set_trailing_metadata(tuple((DEGRADED_METADATA_KEY, r) for r in reasons))
        if request.service == STORAGE_HEALTH_SERVICE:
            status = (
                health_pb2.HealthCheckResponse.NOT_SERVING
                if reasons
                else (health_pb2.HealthCheckResponse.SERVING)
            )
            await self.set(STORAGE_HEALTH_SERVICE, status)  # Watch sees it too
        return await super().Check(request, context)


def build_grpc_server(container: Container, address: str) -> tuple[GrpcServer, int]:
    """Create (but do not start) the gRPC server bound to ``address`` ("host:port").

    Registers the mobiletrain services behind the auth and error interceptor, the standard health
    service (SERVING for "" and every service name; open without a token) and server reflection
    (v1 and v1alpha; a token is needed like for the services). ``address`` may use port 0; the
    port actually bound is returned.
    """
    executor = CountingThreadPool(container.settings.grpc_threads, thread_name_prefix="grpc")
    container.pool_gauges["gRPC handler"] = executor.gauge
    container.pool_gauges["federated long-poll"] = longpoll.pool_gauge
    container.pool_gauges["federated update"] = longpoll.update_pool_gauge
    loop = asyncio.new_event_loop()
    threading.Thread(target=_run_loop, args=(loop,), name="grpc-loop", daemon=True).start()
    wrapper = GrpcServer(loop, executor)
    try:
        wrapper._server, port = wrapper.run(_build(container, address, executor))
    except BaseException:
        wrapper.stop()
        raise
    return wrapper, port


async def _build(
    container: Container, address: str, executor: ThreadPoolExecutor
) -> tuple[grpc.aio.Server, int]:
    settings = container.settings
    server = grpc.aio.server(
        migration_thread_pool=executor,  # health and reflection are async; nothing else uses it
        interceptors=[
            CallInterceptor(
                executor,
                Admission(
                    executor,
                    container.tokens.verify if settings.auth else None,
                    container.rate_limiter,
                    container.stream_slots,
                    address_limiter=RateLimiter(
                        settings.unauthenticated_rate_per_second, settings.unauthenticated_burst
                    ),
                    cached=container.tokens.cached if settings.auth else None,
                ),
                DeadlinePolicy(
                    unary_seconds=settings.grpc_unary_timeout_seconds,
                    stream_seconds=settings.stream_max_seconds,
                    grace_seconds=settings.grpc_deadline_grace_seconds,
                ),
                max_message_bytes=settings.grpc_max_message_bytes,
            ),
        ],
        options=server_options(settings.grpc_max_message_bytes),
    )
    projects_pb2_grpc.add_ProjectServiceServicer_to_server(ProjectServicer(container), server)
    datasets_pb2_grpc.add_DatasetServiceServicer_to_server(DatasetServicer(container), server)
    training_pb2_grpc.add_TrainingServiceServicer_to_server(TrainingServicer(container), server)
    models_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(container, executor), server)
    tokens_pb2_grpc.add_TokenServiceServicer_to_server(TokenServicer(container), server)
    federated_pb2_grpc.add_FederatedServiceServicer_to_server(FederatedServicer(container), server)

    health_servicer = _HealthServicer(container)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICE_NAMES, STORAGE_HEALTH_SERVICE):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    # Reflection v1 and v1alpha; behind the interceptor's token check like the services.
    enable_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server
    )

    try:
        if settings.tls:
            assert settings.tls_cert_file is not None and settings.tls_key_file is not None
            client_ca = (
                settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
            )
            credentials = grpc.ssl_server_credentials(
                [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
                root_certificates=client_ca,
                require_client_auth=client_ca is not None,  # mutual TLS for devices
            )
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise RuntimeError(f"could not bind the gRPC server to {address}") from exc
    if port == 0:
        raise RuntimeError(f"could not bind the gRPC server to {address}")
    return server, port
