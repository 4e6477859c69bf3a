"""Interfaces the federated service depends on; implementations live in store/ and compute/.

The federated package may import core (errors, types, ports); core never imports it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
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
    def get_round(self, session_id: str, number: int) -> RoundRecord | None:
        """One round of a session."""

    @abc.abstractmethod
    def add_update(self, update: UpdateRecord) -> None:
        """Record one device answer."""

    def add_updates(self, updates: Sequence[UpdateRecord]) -> None:
        """Record many answers (one transaction where the store can)."""
        for update in updates:
            self.add_update(update)

    @abc.abstractmethod
    def list_updates(
        self, session_id: str, round_number: int, after_id: int = 0
    ) -> list[UpdateRecord]:
        """The answers of one round in arrival order (those with ``id > after_id``)."""

    # -- what lets any replica take device calls (the coordinator reads them back) -----------
    @abc.abstractmethod
    def find_device(
        self, project_id: str, device_id: str
    ) -> tuple[FederatedSession, DeviceRecord] | None:
        """The newest session of the project that the device registered with, and its row."""

    @abc.abstractmethod
    def touch_device(self, session_id: str, device_id: str, at: datetime) -> None:
        """Record that the device asked for work at ``at``."""

    @abc.abstractmethod
    def available_devices(self, session_id: str, since: datetime) -> list[str]:
        """The devices of a session seen at or after ``since``."""

    @abc.abstractmethod
    def device_updates(
        self, session_id: str, round_number: int, device_id: str
    ) -> list[UpdateRecord]:
        """One device's answers to one round."""

    @abc.abstractmethod
    def add_accepted_update(self, update: UpdateRecord) -> str:
        """Record an accepted update if its round is still open and the device has not answered
        it yet, atomically (any replica may call this while the coordinator closes the round).
        Returns "" when recorded, else why not: ``"closed"`` or ``"duplicate"``."""

    @abc.abstractmethod
    def open_round(self, record: RoundRecord, log: dict[str, Any] | None = None) -> bool:
        """Insert round ``record.number`` and make it the session's current round, only if
        that round was never opened, the current round is the one before and the session
        runs (False: someone else did). ``log``: a LOG event of the session's job written in
        the same transaction (a round's open and its log line are stored together)."""

    @abc.abstractmethod
    def begin_closing(self, session_id: str, round_number: int, at: datetime) -> bool:
        """Stop admitting updates to an open round (sets ``closed_at``); False when it was
        closing or closed already. Waits for updates being recorded."""

    @abc.abstractmethod
    def clear_payloads(self, session_id: str, round_number: int) -> None:
        """Forget the update blobs of a closed round (they may be compacted away)."""

    @abc.abstractmethod
    def save_session_if_active(self, session: FederatedSession) -> bool:
        """Write the session only while the stored one is not over (False: it ended); the
        stored current round is never moved back (only :meth:`open_round` moves it)."""


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
