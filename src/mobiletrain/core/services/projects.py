"""Projects: create, read, delete; the project lookup every other service uses."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from mobiletrain.core.auth import Action, Role, can_see, current, require
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.ports import MetadataStore
from mobiletrain.core.services.common import check_page_size, parse_page_token, utc_now
from mobiletrain.core.types import (
    InputSpec,
    Page,
    Project,
    TaskType,
)
from mobiletrain.core.validation import (
    Limits,
    check_label,
    check_name,
)
from mobiletrain.tasks import parse_task, spec_for

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class ProjectService:
    """Create, find and list projects."""

    def __init__(self, store: MetadataStore, limits: Limits) -> None:
        self.store = store
        self.limits = limits

    def create(
        self,
        name: str,
        task: str = TaskType.IMAGE_CLASSIFICATION.value,
        labels: Sequence[str] = (),
        input_spec: InputSpec | None = None,
    ) -> Project:
        """Create a project; empty ``labels`` means an open label set."""
        require(Action.CREATE_PROJECT)
        check_name(name, self.limits)
        task_type = parse_task(task)  # UNSUPPORTED_TASK naming the allowed ones
        # Validated by the task kind, which fills its default settings (WRONG_TASK_SPEC when
        # the settings belong to another kind).
        spec = spec_for(task_type, input_spec)
        clean = [check_label(lab, self.limits) for lab in labels]
        if len(set(clean)) != len(clean):
            raise MobiletrainError(ErrorCode.INVALID_LABEL, "labels must be unique")
        if len(clean) > self.limits.max_labels_per_project:
            raise MobiletrainError(
                ErrorCode.INVALID_LABEL,
                f"{len(clean)} labels; a project may have {self.limits.max_labels_per_project}",
            )
        project = Project(
            id=str(uuid.uuid4()),
            name=name,
            task=task_type,
            labels=clean,
            labels_fixed=bool(clean),
            input_spec=spec,
            created_at=utc_now(),
        )
        return self.store.create_project(project)

    def get(self, ref: str) -> Project:
        """A project by id or by name."""
        # Ids are UUIDs: a name (what URLs and SDK calls mostly carry) is looked up first and
        # costs one query, not a failed id lookup before it (every upload call starts here).
        if _UUID.match(ref):
            project = self.store.get_project(ref) or self.store.get_project_by_name(ref)
        else:
            project = self.store.get_project_by_name(ref) or self.store.get_project(ref)
        # Another project's device token learns nothing, not even that the project exists.
        if project is None or not can_see(project.id):
            raise MobiletrainError(ErrorCode.PROJECT_NOT_FOUND, f"project {ref!r} not found")
        return project

    def delete(self, ref: str) -> tuple[Project, int]:
        """Delete a project and all it owns (admins only): (the project, samples deleted).

        The rows go in one transaction; the bytes they referred to (samples, model files,
        federated weights) are removed by the next compaction pass, which deletes every blob
        nothing refers to. PROJECT_BUSY while a job of the project is queued or running.
        """
        require(Action.CREATE_PROJECT)
        project = self.get(ref)
        deleted = self.store.delete_project(project.id)
        if deleted is None:  # deleted by another call in the meantime
            raise MobiletrainError(ErrorCode.PROJECT_NOT_FOUND, f"project {ref!r} not found")
        return project, deleted

    def list(self, page_size: int = 0, page_token: str = "") -> Page:
        """Projects in creation order (a device token sees its own project only)."""
        size = check_page_size(page_size, self.limits)
        offset = parse_page_token(page_token)
        principal = current()
        if principal.role is Role.DEVICE:
            own = self.store.get_project(principal.project_id or "")
            return Page(items=[own] if own is not None and offset == 0 else [])
        items = self.store.list_projects(size + 1, offset)
        more = len(items) > size
        return Page(items=items[:size], next_page_token=str(offset + size) if more else "")
