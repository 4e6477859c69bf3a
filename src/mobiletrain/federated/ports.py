"""Interfaces the federated service depends on; implementations live in store/ and compute/.

The federated package may import core (errors, types, ports); core never imports it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mobiletrain.core.types import InputSpec, ModelFormat
from mobiletrain.federated.records import (
    DeviceRecord,
    FederatedSession,
    RoundRecord,
    SessionState,
    UpdateRecord,
)


class FederatedStore(abc.ABC):
    """Rows about federated sessions, their devices, rounds and updates."""

    @abc.abstractmethod
    def create_session(self, session: FederatedSession) -> None:
        """Insert a session."""

    @abc.abstractmethod
    def save_session(self, session: FederatedSession) -> None:
        """Write every mutable field of a session."""

    @abc.abstractmethod
    def get_session(self, session_id: str) -> FederatedSession | None:
        """A session by id."""

    @abc.abstractmethod
    def list_sessions(
        self, project_id: str | None = None, states: Sequence[SessionState] | None = None
    ) -> list[FederatedSession]:
        """Sessions newest first, optionally of one project and in some states."""

    @abc.abstractmethod
    def add_device(self, device: DeviceRecord) -> None:
        """Register a device with a session."""

    @abc.abstractmethod
    def list_devices(self, session_id: str) -> list[DeviceRecord]:
        """The devices of a session in registration order."""

    @abc.abstractmethod
    def save_round(self, record: RoundRecord) -> None:
        """Insert or replace a round."""

    @abc.abstractmethod
    def list_rounds(self, session_id: str) -> list[RoundRecord]:
        """A session's rounds in order."""

    @abc.abstractmethod
    def add_update(self, update: UpdateRecord) -> None:
        """Record one device answer."""

    def add_updates(self, updates: Sequence[UpdateRecord]) -> None:
        """Record many answers (one transaction where the store can)."""
        for update in updates:
            self.add_update(update)

    @abc.abstractmethod
    def list_updates(self, session_id: str, round_number: int) -> list[UpdateRecord]:
        """The answers of one round in arrival order."""


class UpdateSpool(abc.ABC):
    """Short-lived storage of accepted updates, so an open round survives a restart."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes | bytearray, meta: dict[str, Any]) -> None:
        """Store ``data`` and its ``meta`` under ``key`` (``session/round/device``); the entry
        is listed only once both are written."""

    @abc.abstractmethod
    def get(self, key: str) -> tuple[bytes, dict[str, Any]]:
        """The bytes and meta under ``key``; KeyError when absent."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[str]:
        """The complete entries under the folder ``prefix``, sorted."""

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Delete every key that starts with ``prefix`` (a closed round)."""


@dataclass
class PreparedFiles:
    """The on-device files of a session, from :meth:`OnDeviceToolkit.prepare`.

    ``weights`` are the initial head weights in the head-weights format; ``patch_sites``
    (format → sites) say where the weights sit in the files that carry them.
    """

    files: dict[ModelFormat, bytes]
    head: dict[str, Any]
    ondevice: dict[str, Any]
    patch_sites: dict[str, list[dict[str, Any]]]
    weights: bytes


class OnDeviceToolkit(abc.ABC):
    """Exports, patches and evaluates the on-device files (TensorFlow stays out of the API)."""

    @abc.abstractmethod
    def prepare(
        self,
        spec: InputSpec,
        head: dict[str, Any],
        manifest: dict[str, Any],
        base_model: bytes | None,
        seed: int,
    ) -> PreparedFiles:
        """Export every on-device file for a new head (or the head of ``base_model``, a
        .keras classifier whose backbone becomes the feature extractor)."""

    @abc.abstractmethod
    def republish(
        self,
        templates: Mapping[ModelFormat, bytes],
        patch_sites: Mapping[str, Sequence[dict[str, Any]]],
        head: dict[str, Any],
        weights: bytes,
    ) -> dict[ModelFormat, bytes]:
        """The files that carry the weights (classifier, signature variant, weights file)
        with ``weights`` written in."""

    @abc.abstractmethod
    def evaluate(
        self,
        cache_key: str,
        extractor: bytes,
        head_inference: bytes,
        head: dict[str, Any],
        spec: InputSpec,
        load_images: Callable[[], Sequence[bytes]],
        labels: Sequence[int],
        label_names: Sequence[str],
        weights: bytes,
    ) -> dict[str, Any]:
        """Classification report of the head on the images (features cached by
        ``cache_key``)."""
