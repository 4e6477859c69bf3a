"""The model registry: versions, manifests, downloads, update checks, release, inference."""

from __future__ import annotations

import builtins
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from mobiletrain.core.auth import Action, Role, current, require
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.manifest import manifest_of
from mobiletrain.core.ports import BlobStore, MetadataStore, Predictor
from mobiletrain.core.release import (
    ReleaseAction,
    ReleasePolicy,
    ReleaseRecord,
    Rollout,
    VersionStatus,
)
from mobiletrain.core.services.common import (
    check_page_size,
    newest_released,
    parse_page_token,
    utc_now,
)
from mobiletrain.core.services.projects import ProjectService
from mobiletrain.core.types import (
    DEFAULT_MODEL_FORMAT,
    Artifact,
    ModelFormat,
    ModelVersion,
    Page,
    Project,
)
from mobiletrain.tasks import validate_sample

DEFAULT_TOP_K = 5
"""Number of predictions when a request leaves ``top_k`` unset (0), on every wire."""

DEFAULT_RELEASES_LIMIT = 100
"""Release records per history request when it leaves ``limit`` unset (0), on every wire."""


@dataclass
class Prediction:
    """One class score."""

    label: str
    index: int
    score: float


PREDICT_FORMATS: tuple[ModelFormat, ...] = (
    ModelFormat.FLOAT32,
    ModelFormat.FLOAT16,
    ModelFormat.DYNAMIC_INT8,
    ModelFormat.INT8,
)
"""Classifier files Predict may use, best first: the most exact result the version offers."""

SERVED_VERSIONS = 256
"""Stored versions whose Predict essentials are kept in memory (least recently used dropped)."""


@dataclass(frozen=True)
class ServedVersion:
    """What Predict needs of a stored version, kept between calls.

    Only parts that never change once a version is stored: its number, the file Predict runs
    (by content hash) and the manifest's labels. Its status and release decision do change and
    are not here; which version is current is read from the project on every call.
    """

    model: ModelVersion
    sha256: str
    labels: tuple[str, ...]  # the manifest's; empty: the project's labels


class ServedVersions:
    """A bounded map (project id, version) → :class:`ServedVersion`, safe across threads.

    Reading a version row decodes its JSON columns (metrics, evaluation, manifest), which cost
    more than the prediction itself; a stored version's number, files and manifest are never
    rewritten and a project id is never reused, so an entry cannot go stale.
    """

    def __init__(self, capacity: int = SERVED_VERSIONS) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, int], ServedVersion] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, project_id: str, version: int) -> ServedVersion | None:
        """The entry, if kept."""
        with self._lock:
            entry = self._entries.get((project_id, version))
            if entry is not None:
                self._entries.move_to_end((project_id, version))
            return entry

    def put(self, project_id: str, entry: ServedVersion) -> None:
        """Keep ``entry``; the least recently used beyond the capacity is dropped."""
        with self._lock:
            self._entries[(project_id, entry.model.version)] = entry
            self._entries.move_to_end((project_id, entry.model.version))
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class ModelService:
    """The model registry: versions, manifests, downloads, update checks, inference."""

    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        projects: ProjectService,
        predictor: Predictor | None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.projects = projects
        self.predictor = predictor
        self.served = ServedVersions()

    def current_version_number(self, project: Project) -> int | None:
        """The promoted version, else the newest released one (never a candidate), else None.

        The release gate and people promote explicitly; the fallback serves versions stored
        before the gate existed and projects whose pin was removed (``promote(0)``).
        """
        number = project.promoted_version
        if number is None:
            number = newest_released(self.store.list_model_versions(project.id))
        rollout = project.rollout
        principal = current()
        # A staged rollout answers per device: tokens outside its share keep the previous one.
        if (
            rollout is not None
            and rollout.version == number
            and principal.role is Role.DEVICE
            and rollout.active(utc_now())
            and not rollout.serves_new(principal.token_id)
        ):
            return rollout.previous_version
        return number

    def list(self, project_ref: str) -> tuple[builtins.list[ModelVersion], int | None]:
        """All versions newest first, and the current version number."""
        project = self.projects.get(project_ref)
        versions = self.store.list_model_versions(project.id)
        current = project.promoted_version or newest_released(versions)
        return versions, current

    def list_page(
        self, project_ref: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[Page, int | None]:
        """A page of versions newest first, and the current version number."""
        size = check_page_size(page_size, self.projects.limits)
        start = parse_page_token(page_token)
        versions, current = self.list(project_ref)
        more = start + size < len(versions)
        page = Page(versions[start : start + size], str(start + size) if more else "")
        return page, current

    @staticmethod
    def status_of(model: ModelVersion, current: int | None) -> VersionStatus:
        """current, candidate (never released) or retired (current once, replaced since)."""
        if model.version == current:
            return VersionStatus.CURRENT
        if model.status == "candidate":
            return VersionStatus.CANDIDATE
        return VersionStatus.RETIRED

    def history(self, project_ref: str, limit: int = 0) -> builtins.list[ReleaseRecord]:
        """Which version was current when, and why; newest first. ``limit`` 0 = unset:
        :data:`DEFAULT_RELEASES_LIMIT`; outside 0..1000: INVALID_PAGE (every wire)."""
        project = self.projects.get(project_ref)
        limit = limit or DEFAULT_RELEASES_LIMIT
        if not 1 <= limit <= 1000:
            raise MobiletrainError(ErrorCode.INVALID_PAGE, f"limit must be in 1..1000, got {limit}")
        return self.store.list_releases(project.id, limit)

    def policy(self, project_ref: str) -> tuple[ReleasePolicy, bool]:
        """The project's release policy (defaults when never set) and whether it is pinned."""
        project = self.projects.get(project_ref)
        return project.release_policy or ReleasePolicy(), project.release_pinned

    def rollout(self, project_ref: str) -> Rollout | None:
        """The staged rollout in progress (None when every device gets the current version)."""
        project = self.projects.get(project_ref)
        rollout = project.rollout
        return rollout if rollout is not None and rollout.active(utc_now()) else None

    def set_policy(self, project_ref: str, policy: ReleasePolicy) -> ReleasePolicy:
        """Replace the project's release policy (INVALID_RELEASE_POLICY for a bad value)."""
        require(Action.PROMOTE)
        project = self.projects.get(project_ref)
        policy.validate()
        self.store.set_release_policy(project.id, policy)
        return policy

    def rollback(self, project_ref: str, reason: str = "") -> ModelVersion:
        """Undo the promotion of the current version: the version that was current before it
        was promoted is current again. Rollbacks themselves are not undone (a second rollback
        goes further back, it does not flip back).

        NO_PREVIOUS_VERSION when there is none (the first release, or no history).
        """
        require(Action.PROMOTE)
        project = self.projects.get(project_ref)
        current = self.current_version_number(project)
        target: int | None = None
        for record in self.store.list_releases(project.id, 1000):
            if record.action is not ReleaseAction.ROLLBACK and record.version == current:
                target = record.previous_version
                break
        if target is None and not self.store.list_releases(project.id, 1):
            # Versions released before the history existed: the newest older released one.
            older = [
                v
                for v in self.store.list_model_versions(project.id)
                if v.status != "candidate" and current is not None and v.version < current
            ]
            target = older[0].version if older else None
        if target is None or target == current:
            raise MobiletrainError(
                ErrorCode.NO_PREVIOUS_VERSION,
                f"version {current} has no earlier current version to roll back to",
            )
        return self._make_current(
            project, target, ReleaseAction.ROLLBACK, reason or "rolled back", pin=False
        )

    def get(self, project_ref: str, version: int = 0) -> ModelVersion:
        """A version; 0 means the current one."""
        project = self.projects.get(project_ref)
        if version == 0:
            current = self.current_version_number(project)
            if current is None:
                raise MobiletrainError(ErrorCode.NO_MODEL, "the project has no trained model yet")
            version = current
        # A number past the database's 64-bit integers names no version (and must not reach
        # SQL, which cannot bind it).
        fits = -(2**63) <= version < 2**63
        model = self.store.get_model_version(project.id, version) if fits else None
        if model is None:
            raise MobiletrainError(ErrorCode.MODEL_NOT_FOUND, f"model version {version} not found")
        return model

    def artifact(self, project_ref: str, version: int, fmt: str) -> tuple[ModelVersion, Artifact]:
        """The file of one format of a version (``fmt`` "": :data:`DEFAULT_MODEL_FORMAT`)."""
        model_format = ModelFormat.parse(fmt) if fmt else DEFAULT_MODEL_FORMAT
        model = self.get(project_ref, version)
        artifact = model.artifacts.get(model_format)
        if artifact is None:
            have = ", ".join(f.value for f in model.artifacts)
            raise MobiletrainError(
                ErrorCode.FORMAT_NOT_FOUND,
                f"version {model.version} has no {model_format.value!r} file; it has: {have}",
            )
        return model, artifact

    def read(
        self, artifact: Artifact, start: int = 0, length: int | None = None
    ) -> Iterator[bytes]:
        """Stream an artifact's bytes from ``start``."""
        require(Action.DOWNLOAD)
        if start < 0 or start > artifact.size:
            raise MobiletrainError(
                ErrorCode.INVALID_RANGE,
                f"offset {start} is outside the {artifact.size}-byte file "
                f"(valid offsets: 0 to {artifact.size})",
            )
        if length is None:
            length = artifact.size - start
        if length < 0 or start + length > artifact.size:
            raise MobiletrainError(
                ErrorCode.INVALID_RANGE,
                f"{length} bytes from offset {start} run past the end of the "
                f"{artifact.size}-byte file",
            )
        return self.blobs.read_range(artifact.sha256, start, length)

    def check_update(
        self, project_ref: str, fmt: str, have_sha256: str = "", have_version: int = 0
    ) -> tuple[bool, ModelVersion, Artifact]:
        """(not_modified, current version, its artifact) for an app that has a model already."""
        require(Action.DOWNLOAD)
        model, artifact = self.artifact(project_ref, 0, fmt)
        not_modified = (have_sha256 and have_sha256 == artifact.sha256) or (
            not have_sha256 and have_version == model.version
        )
        return bool(not_modified), model, artifact

    def promote(
        self, project_ref: str, version: int, pin: bool = False, reason: str = ""
    ) -> ModelVersion:
        """Make ``version`` the one apps get, whatever the gate said (a candidate too).

        ``pin``: the release gate then keeps every new version a candidate until someone
        promotes again. ``0`` removes the pin and the promotion: the newest released version
        is current. Every change is recorded in :meth:`history`.
        """
        require(Action.PROMOTE)
        if version < 0:
            raise MobiletrainError(
                ErrorCode.INVALID_ARGUMENT, f"version must be at least 0, got {version}"
            )
        project = self.projects.get(project_ref)
        if version == 0:
            newest = newest_released(self.store.list_model_versions(project.id))
            if newest is None:
                raise MobiletrainError(ErrorCode.NO_MODEL, "the project has no released model")
            model = self._make_current(
                project,
                newest,
                ReleaseAction.MANUAL_PROMOTE,
                reason or "promotion removed: the newest released version is current",
                pin=False,
            )
            # No promoted version: the newest released one stays current as new ones arrive.
            self.store.set_promoted_version(project.id, None)
            return model
        return self._make_current(
            project, version, ReleaseAction.MANUAL_PROMOTE, reason or "promoted by hand", pin
        )

    def _make_current(
        self, project: Project, version: int, action: ReleaseAction, reason: str, pin: bool
    ) -> ModelVersion:
        if len(reason) > 1000:
            raise MobiletrainError(ErrorCode.FIELD_TOO_LONG, "reason is longer than 1000 chars")
        model = self.get(project.id, version)
        principal = current()
        actor = f"token {principal.token_id}" if principal.token_id else "server"
        self.store.change_current_version(
            ReleaseRecord(
                project_id=project.id,
                version=model.version,
                previous_version=None,
                action=action,
                reason=reason,
                actor=actor,
                created_at=utc_now(),
            ),
            pinned=pin,
        )
        return self.get(project.id, version)

    def predict(
        self, project_ref: str, image: bytes, version: int = 0, top_k: int = 0
    ) -> tuple[ModelVersion, builtins.list[Prediction], float]:
        """Top-k predictions for one sample of the project's task kind (an image, a WAV, a
        sensor CSV/JSON), and latency in ms (``top_k`` 0 = unset: :data:`DEFAULT_TOP_K`;
        below 0: INVALID_ARGUMENT).

        Uses the best classifier file the version has, in the order of :data:`PREDICT_FORMATS`
        (float32, float16, dynamic-int8, int8); FORMAT_NOT_FOUND only when it has none.
        The returned version carries what never changes (number, files, manifest) as first read.
        """
        call = self._predict_call(project_ref, version, top_k)
        project, predictor = call.project, call.predictor
        served = call.served or self._served(project, call.version)
        # Verify first so a bad sample gets the same precise error as an upload (the kind's
        # codes: corrupt image, WAV 110-114, sensor recording 115-119); every kind predicts.
        validate_sample(project.input_spec, image, self.projects.limits)
        started = time.perf_counter()
        sha256 = served.sha256
        probs = predictor.predict(sha256, lambda: self.blobs.get(sha256), project.input_spec, image)
        return _answer(project, served, probs, call.top_k, started)

    def predict_now(
        self, project_ref: str, image: bytes, version: int = 0, top_k: int = 0
    ) -> tuple[ModelVersion, builtins.list[Prediction], float] | None:
        """:meth:`predict` answered at once when that is cheap, else None (nothing done but
        the checks; call :meth:`predict` from a worker thread).

        For the servers' event loops: cheap means the version's essentials and its model are
        in memory, an interpreter is idle, the model's recent calls were short and the sample
        is small. What still runs is one indexed read of the project row (so a promotion is
        seen at once), the sample's validation, decode and invoke. Errors as :meth:`predict`.
        """
        call = self._predict_call(project_ref, version, top_k)
        served, spec = call.served, call.project.input_spec
        if served is None or not call.predictor.ready(served.sha256, spec, image):
            return None
        validate_sample(spec, image, self.projects.limits)
        started = time.perf_counter()
        probs = call.predictor.predict_now(served.sha256, spec, image)
        if probs is None:
            return None
        return _answer(call.project, served, probs, call.top_k, started)

    def _predict_call(self, project_ref: str, version: int, top_k: int) -> _PredictCall:
        """The checks every prediction starts with, and what it works on: the project is read
        now, so a promotion or rollback (here or on another replica) is seen by the next
        prediction; the version's essentials come from memory when kept."""
        require(Action.PREDICT)
        if top_k < 0:
            raise MobiletrainError(
                ErrorCode.INVALID_ARGUMENT, f"top_k must be at least 0, got {top_k}"
            )
        if self.predictor is None:
            raise MobiletrainError(ErrorCode.FAILED_PRECONDITION, "server-side inference is off")
        project = self.projects.get(project_ref)
        if version == 0:
            version = self.current_version_number(project) or 0
        served = self.served.get(project.id, version) if version else None
        return _PredictCall(project, self.predictor, version, served, top_k or DEFAULT_TOP_K)

    def _served(self, project: Project, version: int) -> ServedVersion:
        """The Predict essentials of ``version`` (0: the project has no current one), read
        from the store and kept. Errors as :meth:`get` (NO_MODEL, MODEL_NOT_FOUND), and
        FORMAT_NOT_FOUND when the version has no classifier file; failures are not kept."""
        model = self.get(project.id, version)
        artifact = next((model.artifacts[f] for f in PREDICT_FORMATS if f in model.artifacts), None)
        if artifact is None:
            have = ", ".join(f.value for f in model.artifacts) or "none"
            raise MobiletrainError(
                ErrorCode.FORMAT_NOT_FOUND,
                f"version {model.version} has no classifier file to predict with "
                f"(float32, float16, dynamic-int8 or int8); it has: {have}",
            )
        entry = ServedVersion(model, artifact.sha256, tuple(manifest_of(model).labels))
        self.served.put(project.id, entry)
        return entry


@dataclass(frozen=True)
class _PredictCall:
    project: Project
    predictor: Predictor
    version: int  # resolved; 0 when the project has no current version
    served: ServedVersion | None
    top_k: int


def _answer(
    project: Project,
    served: ServedVersion,
    probs: builtins.list[float],
    top_k: int,
    started: float,
) -> tuple[ModelVersion, builtins.list[Prediction], float]:
    latency_ms = (time.perf_counter() - started) * 1000
    labels = served.labels or tuple(project.labels)
    ranked = sorted(range(len(probs)), key=lambda i: probs[i], reverse=True)
    top = [Prediction(label=labels[i], index=i, score=float(probs[i])) for i in ranked[:top_k]]
    return served.model, top, latency_ms
