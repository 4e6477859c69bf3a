"""A gRPC stream's generator may be finalised by the event loop in another context than the one
that bound its principal and deadline; unbinding there must not raise (it used to log a
ValueError traceback per abandoned WatchJob under load)."""

from __future__ import annotations

import contextvars

from mobiletrain.api.grpc.deadlines import CallDeadline, bind, current_deadline
from mobiletrain.core.auth import SYSTEM, Principal, Role, acting_as, current


def test_acting_as_closed_from_another_context() -> None:
    principal = Principal(token_id="t1", role=Role.DEVICE, project_id="p")
    manager = acting_as(principal)
    bound = contextvars.copy_context()
    assert bound.run(manager.__enter__) == principal
    assert bound.run(current) == principal and current() == SYSTEM
    manager.__exit__(None, None, None)  # here, not in `bound`: no ValueError
    assert current() == SYSTEM


def test_deadline_unbound_from_another_context() -> None:
    deadline = CallDeadline(5.0, stream=True)
    bound = contextvars.copy_context()
    unbind = bound.run(bind, deadline)
    assert bound.run(current_deadline) is deadline and current_deadline() is None
    unbind()  # here, not in `bound`: no ValueError
    assert current_deadline() is None
