"""Projects: create, look up, labels, deletion with everything they own."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import (
    JobState,
    Project,
)
from mobiletrain.store import schema as t
from mobiletrain.store.sql.base import SqlStoreBase
from mobiletrain.store.sql.rows import _row_project

# Built once: every Predict and upload stream looks its project up, and building the statement
# (and its cache key) per call cost 40 of the lookup's 110 us on SQLite (issue 18's profile).
_PROJECT_BY_ID = sa.select(t.projects).where(t.projects.c.id == sa.bindparam("ref"))
_PROJECT_BY_NAME = sa.select(t.projects).where(t.projects.c.name == sa.bindparam("ref"))


class ProjectRows(SqlStoreBase):
    """Projects: create, look up, labels, deletion with everything they own."""

    # -- projects ---------------------------------------------------------------------------
    def create_project(self, project: Project) -> Project:
        """Insert a project; PROJECT_EXISTS when the name is taken."""
        values = {
            "id": project.id,
            "name": project.name,
            "task": project.task.value,
            "labels": project.labels,
            "labels_fixed": project.labels_fixed,
            "input_spec": project.input_spec.to_dict(),
            "created_at": project.created_at,
            "promoted_version": project.promoted_version,
        }
        try:
            self._tx(lambda c: c.execute(t.projects.insert().values(**values)))
        except IntegrityError:
            raise MobiletrainError(
                ErrorCode.PROJECT_EXISTS, f"a project named {project.name!r} already exists"
            ) from None
        return project

    def get_project(self, project_id: str) -> Project | None:
        """A project by id."""
        r = self._read(lambda c: c.execute(_PROJECT_BY_ID, {"ref": project_id}).first())
        return _row_project(r) if r else None

    def get_project_by_name(self, name: str) -> Project | None:
        """A project by name."""
        r = self._read(lambda c: c.execute(_PROJECT_BY_NAME, {"ref": name}).first())
        return _row_project(r) if r else None

    def list_projects(self, limit: int, offset: int) -> list[Project]:
        """Projects in creation order."""
        q = sa.select(t.projects).order_by(t.projects.c.created_at, t.projects.c.id)
        rows = self._read(lambda c: c.execute(q.limit(limit).offset(offset)).all())
        return [_row_project(r) for r in rows]

    def add_labels(self, project_id: str, labels: Sequence[str]) -> list[str]:
        """Append unseen labels in order of first arrival."""

        def tx(c: Connection) -> list[str]:
            q = sa.select(t.projects.c.labels).where(t.projects.c.id == project_id)
            current = list(c.execute(q.with_for_update()).scalar_one())
            added = [lab for lab in dict.fromkeys(labels) if lab not in current]
            if added:
                current += added
                c.execute(
                    t.projects.update().where(t.projects.c.id == project_id).values(labels=current)
                )
            return current

        return self._tx(tx)

    def set_promoted_version(self, project_id: str, version: int | None) -> None:
        """Pin (or unpin with None) the version apps get."""
        self._tx(
            lambda c: c.execute(
                t.projects.update()
                .where(t.projects.c.id == project_id)
                .values(promoted_version=version)
            )
        )

    def delete_project(self, project_id: str) -> int | None:
        """Delete a project and its rows in one transaction; PROJECT_BUSY with an active job."""

        def tx(c: Connection) -> int | None:
            if (
                c.execute(sa.select(t.projects.c.id).where(t.projects.c.id == project_id)).first()
                is None
            ):
                return None
            active = (JobState.QUEUED.value, JobState.RUNNING.value)
            busy = c.execute(
                sa.select(t.jobs.c.id).where(
                    t.jobs.c.project_id == project_id, t.jobs.c.state.in_(active)
                )
            ).first()
            if busy is not None:  # checked inside the transaction: a job queued meanwhile wins
                raise MobiletrainError(
                    ErrorCode.PROJECT_BUSY,
                    f"job {busy[0]} of the project is queued or running; cancel it first",
                )
            sessions = sa.select(t.federated_sessions.c.id).where(
                t.federated_sessions.c.project_id == project_id
            )
            for table in (t.federated_updates, t.federated_rounds, t.federated_devices):
                c.execute(table.delete().where(table.c.session_id.in_(sessions)))
            jobs = sa.select(t.jobs.c.id).where(t.jobs.c.project_id == project_id)
            c.execute(t.job_events.delete().where(t.job_events.c.job_id.in_(jobs)))
            samples = c.execute(t.samples.delete().where(t.samples.c.project_id == project_id))
            # Children before parents (foreign keys); the project row goes last.
            for table in (
                t.federated_sessions,
                t.model_releases,
                t.model_versions,
                t.tokens,
                t.upload_sessions,
                t.jobs,
            ):
                c.execute(table.delete().where(table.c.project_id == project_id))
            c.execute(t.projects.delete().where(t.projects.c.id == project_id))
            return int(samples.rowcount or 0)

        return self._tx(tx)
