"""Who may make a call, and how often: the first step of every gRPC call.

Every call to a mobiletrain service is authenticated first: the bearer token in the metadata
``authorization`` is verified and the handler runs as that principal (see ``core.auth``), so
the core services can check what the caller may do. Then the token's rate limit applies, and a
stream holds one of the token's stream slots while it runs. Failed tokens are rate-limited per
client address, as over REST. Without an ``authenticate`` function (auth switched off) calls run
as the local admin.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import ExitStack
from dataclasses import dataclass

import grpc

from mobiletrain.api.grpc.bridge import SyncContext, run_in_pool
from mobiletrain.core.auth import SYSTEM, Principal, acting_as
from mobiletrain.core.errors import MobiletrainError
from mobiletrain.core.ratelimit import RateLimiter, StreamSlots

Authenticator = Callable[[str | None], Principal]
"""Turns the bearer secret of a call (None if absent) into a principal, or raises."""

AUTHORIZATION_METADATA_KEY = "authorization"


def bearer_secret(context: grpc.aio.ServicerContext | SyncContext) -> str | None:
    """The token of ``authorization: Bearer <token>`` metadata, if any."""
    for key, value in context.invocation_metadata() or ():
        if key == AUTHORIZATION_METADATA_KEY and isinstance(value, str):
            scheme, _, secret = value.partition(" ")
            return secret.strip() if scheme.lower() == "bearer" else None
    return None


def peer_address(context: grpc.aio.ServicerContext) -> str:
    """The client's IP address (``ipv4:1.2.3.4:5678`` -> ``1.2.3.4``)."""
    peer = str(context.peer() or "")
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host = rest.rsplit(":", 1)[0]
        return host.strip("[]")
    return peer


@dataclass(frozen=True)
class Admission:
    """Authentication, rate limits and stream slots of the gRPC server."""

    executor: Executor  # token checks may touch the database: they run in the pool
    authenticate: Authenticator | None = None
    limiter: RateLimiter | None = None
    slots: StreamSlots | None = None
    address_limiter: RateLimiter | None = None
    # The principal of a recently verified secret, or None, without the database: most calls
    # are admitted on the event loop with no hop to the pool (``TokenService.cached``).
    cached: Callable[[str | None], Principal | None] | None = None

    async def admit(
        self, context: grpc.aio.ServicerContext, stream: bool, stack: ExitStack
    ) -> Principal:
        """Authenticate and limit the call; it runs as the returned principal (bound on
        ``stack``, which also holds a stream's slot until the call ends)."""
        principal = SYSTEM
        if self.authenticate is not None:
            secret = bearer_secret(context)
            known = self.cached(secret) if self.cached is not None else None
            try:
                principal = (
                    known
                    if known is not None
                    else await run_in_pool(
                        self.executor, contextvars.copy_context(), self.authenticate, secret
                    )
                )
            except MobiletrainError:
                # Failed tokens are rate-limited per client address, as over REST.
                if self.address_limiter is not None:
                    self.address_limiter.check(f"address:{peer_address(context)}")
                raise
        if self.limiter is not None:
            self.limiter.check(principal.token_id)
        if stream and self.slots is not None:
            stack.enter_context(self.slots.hold(principal.token_id))
        stack.enter_context(acting_as(principal))
        return principal
