"""The one way both federated adapters (gRPC and REST) reach the federated service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mobiletrain.core.errors import ErrorCode, MobiletrainError

if TYPE_CHECKING:
    from mobiletrain.container import Container
    from mobiletrain.federated.service import FederatedService


def federated_service(container: Container) -> FederatedService:
    """The server's federated service; FAILED_PRECONDITION when federated learning is off."""
    if container.federated is None:
        raise MobiletrainError(ErrorCode.FAILED_PRECONDITION, "federated learning is not enabled")
    return container.federated
