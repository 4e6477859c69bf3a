"""Model versions and the release gate (evaluation set, policy, releases)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.release import (
    ReleaseDecision,
    ReleasePolicy,
    ReleaseRecord,
    Rollout,
)
from mobiletrain.core.types import (
    ModelVersion,
)
from mobiletrain.store import schema as t
from mobiletrain.store.sql.base import SqlStoreBase
from mobiletrain.store.sql.rows import _row_model, _row_release


class ModelRows(SqlStoreBase):
    """Model versions and the release gate (evaluation set, policy, releases)."""

    # -- models -----------------------------------------------------------------------------
    def next_model_version(self, project_id: str) -> int:
        """The number the next version of a project would get (max + 1)."""
        q = sa.select(sa.func.max(t.model_versions.c.version)).where(
            t.model_versions.c.project_id == project_id
        )
        return int(self._read(lambda c: c.execute(q).scalar()) or 0) + 1

    def create_model_version(self, model: ModelVersion) -> ModelVersion:
        """Insert with version = max + 1 for the project (retried on a concurrent insert), or
        with ``model.version`` when it is set (ALREADY_EXISTS when that number is taken)."""

        def tx(c: Connection) -> int:
            last = c.execute(
                sa.select(sa.func.max(t.model_versions.c.version)).where(
                    t.model_versions.c.project_id == model.project_id
                )
            ).scalar()
            version = model.version or int(last or 0) + 1
            c.execute(
                t.model_versions.insert().values(
                    project_id=model.project_id,
                    version=version,
                    job_id=model.job_id,
                    created_at=model.created_at,
                    metrics=model.metrics,
                    manifest={**model.manifest, "version": version},
                    artifacts={
                        f.value: {"sha256": a.sha256, "size": a.size}
                        for f, a in model.artifacts.items()
                    },
                    status=model.status,
                    decision=model.decision.to_dict() if model.decision else None,
                    evaluation=model.evaluation.to_dict() if model.evaluation else None,
                    warnings=list(model.warnings),
                )
            )
            return version

        for attempt in range(10):
            try:
                version = self._tx(tx)
                break
            except IntegrityError:
                if model.version:
                    raise MobiletrainError(
                        ErrorCode.ALREADY_EXISTS, f"model version {model.version} exists"
                    ) from None
                if attempt == 9:
                    raise
        stored = self.get_model_version(model.project_id, version)
        assert stored is not None
        return stored

    def get_model_version(self, project_id: str, version: int) -> ModelVersion | None:
        """One version of a project."""
        q = sa.select(t.model_versions).where(
            t.model_versions.c.project_id == project_id, t.model_versions.c.version == version
        )
        r = self._read(lambda c: c.execute(q).first())
        return _row_model(r) if r else None

    def list_model_versions(self, project_id: str) -> list[ModelVersion]:
        """All versions newest first."""
        q = (
            sa.select(t.model_versions)
            .where(t.model_versions.c.project_id == project_id)
            .order_by(t.model_versions.c.version.desc())
        )
        return [_row_model(r) for r in self._read(lambda c: c.execute(q).all())]

    # -- release gate -----------------------------------------------------------------------
    def assign_eval_set(self, project_id: str, assignments: dict[str, bool]) -> None:
        """Record evaluation-set membership of still unassigned samples (assigned ones never
        move, even if two workers race)."""
        if not assignments:
            return

        def tx(c: Connection) -> None:
            for flag in (True, False):
                ids = [sid for sid, v in assignments.items() if v is flag]
                for start in range(0, len(ids), 500):
                    c.execute(
                        t.samples.update()
                        .where(
                            t.samples.c.project_id == project_id,
                            t.samples.c.id.in_(ids[start : start + 500]),
                            t.samples.c.in_eval_set.is_(None),
                        )
                        .values(in_eval_set=flag)
                    )

        self._tx(tx)

    def set_release_policy(self, project_id: str, policy: ReleasePolicy | None) -> None:
        """Store a project's release policy (None: the defaults)."""
        self._tx(
            lambda c: c.execute(
                t.projects.update()
                .where(t.projects.c.id == project_id)
                .values(release_policy=policy.to_dict() if policy else None)
            )
        )

    def change_current_version(
        self,
        record: ReleaseRecord,
        pinned: bool,
        expected_current: int | None = -1,
        rollout: Rollout | None = None,
    ) -> ReleaseRecord | None:
        """Make ``record.version`` current, mark it released and append ``record``, at once;
        ``rollout`` replaces the project's staged rollout (None ends any).

        With ``expected_current`` (not -1), nothing changes and None is returned when the
        current version is no longer that one (another job or a person got there first).
        """

        def tx(c: Connection) -> ReleaseRecord | None:
            row = c.execute(
                sa.select(t.projects.c.promoted_version)
                .where(t.projects.c.id == record.project_id)
                .with_for_update()
            ).first()
            if row is None:
                return None
            if expected_current != -1 and row.promoted_version != expected_current:
                return None
            c.execute(
                t.projects.update()
                .where(t.projects.c.id == record.project_id)
                .values(
                    promoted_version=record.version,
                    release_pinned=pinned,
                    rollout=rollout.to_dict() if rollout else None,
                )
            )
            if record.version is not None:
                c.execute(
                    t.model_versions.update()
                    .where(
                        t.model_versions.c.project_id == record.project_id,
                        t.model_versions.c.version == record.version,
                    )
                    .values(status="released")
                )
            result = c.execute(
                t.model_releases.insert().values(
                    project_id=record.project_id,
                    version=record.version,
                    previous_version=row.promoted_version,
                    action=record.action.value,
                    reason=record.reason,
                    actor=record.actor,
                    job_id=record.job_id,
                    created_at=record.created_at,
                )
            )
            key = result.inserted_primary_key
            record.id = int(key[0]) if key is not None else 0
            record.previous_version = row.promoted_version
            return record

        return self._tx(tx)

    def set_model_decision(self, project_id: str, version: int, decision: ReleaseDecision) -> None:
        """Replace a version's stored release decision."""
        self._tx(
            lambda c: c.execute(
                t.model_versions.update()
                .where(
                    t.model_versions.c.project_id == project_id,
                    t.model_versions.c.version == version,
                )
                .values(decision=decision.to_dict())
            )
        )

    def list_releases(self, project_id: str, limit: int = 100) -> list[ReleaseRecord]:
        """The project's release history, newest first."""
        q = (
            sa.select(t.model_releases)
            .where(t.model_releases.c.project_id == project_id)
            .order_by(t.model_releases.c.id.desc())
            .limit(limit)
        )
        return [_row_release(r) for r in self._read(lambda c: c.execute(q).all())]
