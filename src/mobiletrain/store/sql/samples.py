"""Samples: ingest with duplicate detection, paging, relabel, counters, damage marks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from mobiletrain.core.annotations import Box, boxes_to_json
from mobiletrain.core.types import (
    Sample,
)
from mobiletrain.store import schema as t
from mobiletrain.store.sql.base import SqlStoreBase
from mobiletrain.store.sql.rows import _hex_digests, _relabel_conflict, _row_sample


class SampleRows(SqlStoreBase):
    """Samples: ingest with duplicate detection, paging, relabel, counters, damage marks."""

    # -- samples ----------------------------------------------------------------------------
    def add_samples(self, samples: Sequence[Sample]) -> list[Sample | None]:
        """Insert new samples; return the stored twin of each duplicate (None when inserted)."""
        if not samples:
            return []
        project_id = samples[0].project_id

        def tx(c: Connection) -> list[Sample | None]:
            client_ids = [s.client_id for s in samples]
            shas = list({s.sha256 for s in samples})
            rows = c.execute(
                sa.select(t.samples).where(
                    t.samples.c.project_id == project_id,
                    sa.or_(t.samples.c.client_id.in_(client_ids), t.samples.c.sha256.in_(shas)),
                )
            ).all()
            by_client = {r.client_id: _row_sample(r) for r in rows}
            by_content = {(r.sha256, r.label): _row_sample(r) for r in rows}
            out: list[Sample | None] = []
            new_rows: list[dict[str, Any]] = []
            for s in samples:
                twin = by_client.get(s.client_id) or by_content.get((s.sha256, s.label))
                out.append(twin)
                if twin is None:
                    # Later samples of the same batch may repeat this one.
                    by_client[s.client_id] = s
                    by_content[(s.sha256, s.label)] = s
                    new_rows.append(
                        {
                            "id": s.id,
                            "project_id": s.project_id,
                            "client_id": s.client_id,
                            "label": s.label,
                            "sha256": s.sha256,
                            "size": s.size,
                            "media_type": s.media_type,
                            "width": s.width,
                            "height": s.height,
                            "created_at": s.created_at,
                            "uploaded_by": s.uploaded_by,
                            "boxes": None if s.boxes is None else boxes_to_json(s.boxes),
                        }
                    )
            if new_rows:
                c.execute(t.samples.insert(), new_rows)
                c.execute(
                    t.projects.update()
                    .where(t.projects.c.id == project_id)
                    .values(
                        sample_count=t.projects.c.sample_count + len(new_rows),
                        sample_bytes=t.projects.c.sample_bytes + sum(r["size"] for r in new_rows),
                    )
                )
            return out

        # A concurrent upload inserted one of these between our read and write: the re-run
        # sees its rows and reports them as duplicates. Each conflict turns at least one more
        # of our samples into a duplicate, so len(samples) + 1 runs always suffice (with many
        # uploaders of the same pictures, a re-run can meet another, newer conflict).
        for attempt in range(len(samples) + 1):
            try:
                return self._tx(tx)
            except IntegrityError:
                if attempt == len(samples):
                    raise
        raise AssertionError("unreachable")

    def get_sample(self, project_id: str, sample_id: str) -> Sample | None:
        """One sample of a project."""
        r = self._read(
            lambda c: c.execute(
                sa.select(t.samples).where(
                    t.samples.c.project_id == project_id, t.samples.c.id == sample_id
                )
            ).first()
        )
        return _row_sample(r) if r else None

    def get_sample_by_client_id(self, project_id: str, client_id: str) -> Sample | None:
        """The sample stored under a client id."""
        q = sa.select(t.samples).where(
            t.samples.c.project_id == project_id, t.samples.c.client_id == client_id
        )
        r = self._read(lambda c: c.execute(q).first())
        return _row_sample(r) if r else None

    def list_samples(
        self,
        project_id: str,
        label: str | None,
        limit: int,
        after: int,
        uploaded_by: str | None = None,
    ) -> tuple[list[Sample], int]:
        """Keyset paging over the insertion order (only one uploader's, when given)."""
        q = sa.select(t.samples).where(
            t.samples.c.project_id == project_id, t.samples.c.seq > after
        )
        if label is not None:
            q = q.where(t.samples.c.label == label)
        if uploaded_by is not None:
            q = q.where(t.samples.c.uploaded_by == uploaded_by)
        rows = self._read(lambda c: c.execute(q.order_by(t.samples.c.seq).limit(limit + 1)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = rows[-1].seq if more and rows else 0
        return [_row_sample(r) for r in rows], next_cursor

    def all_samples(self, project_id: str) -> list[Sample]:
        """Every sample of a project in insertion order."""
        q = (
            sa.select(t.samples)
            .where(t.samples.c.project_id == project_id)
            .order_by(t.samples.c.seq)
        )
        return [_row_sample(r) for r in self._read(lambda c: c.execute(q).all())]

    def delete_sample(self, project_id: str, sample_id: str) -> bool:
        """Delete one sample row (its blob may be shared and stays)."""

        def tx(c: Connection) -> bool:
            where = (t.samples.c.project_id == project_id, t.samples.c.id == sample_id)
            size = c.execute(sa.select(t.samples.c.size).where(*where)).scalar()
            if size is None or not c.execute(t.samples.delete().where(*where)).rowcount:
                return False
            c.execute(
                t.projects.update()
                .where(t.projects.c.id == project_id)
                .values(
                    sample_count=t.projects.c.sample_count - 1,
                    sample_bytes=t.projects.c.sample_bytes - size,
                )
            )
            return True

        return self._tx(tx)

    def relabel_sample(self, project_id: str, sample_id: str, label: str) -> Sample | None:
        """Change a sample's label; ALREADY_EXISTS when its bytes already carry ``label``."""
        samples = t.samples
        where = (samples.c.project_id == project_id, samples.c.id == sample_id)

        def tx(c: Connection) -> Sample | None:
            row = c.execute(sa.select(samples).where(*where)).first()
            if row is None:
                return None
            if row.label != label:
                twin = c.execute(
                    sa.select(samples.c.id).where(
                        samples.c.project_id == project_id,
                        samples.c.sha256 == row.sha256,
                        samples.c.label == label,
                    )
                ).first()
                if twin is not None:
                    raise _relabel_conflict(label, twin.id)
                c.execute(samples.update().where(*where).values(label=label))
                row = c.execute(sa.select(samples).where(*where)).one()
            return _row_sample(row)

        try:
            return self._tx(tx)
        except IntegrityError:
            # A concurrent upload stored the same bytes under ``label`` in the meantime.
            raise _relabel_conflict(label, None) from None

    def set_sample_boxes(
        self, project_id: str, sample_id: str, boxes: Sequence[Box], label: str
    ) -> Sample | None:
        """Replace a detection sample's boxes and its derived label; None when absent.

        ALREADY_EXISTS when the new label would give the project the same bytes twice under
        one label (the unique (project, sha256, label) rule), as relabelling does.
        """
        samples = t.samples
        where = (samples.c.project_id == project_id, samples.c.id == sample_id)

        def tx(c: Connection) -> Sample | None:
            row = c.execute(sa.select(samples.c.sha256, samples.c.label).where(*where)).first()
            if row is None:
                return None
            if row.label != label:
                twin = c.execute(
                    sa.select(samples.c.id).where(
                        samples.c.project_id == project_id,
                        samples.c.sha256 == row.sha256,
                        samples.c.label == label,
                    )
                ).first()
                if twin is not None:
                    raise _relabel_conflict(label, twin.id)
            c.execute(
                samples.update().where(*where).values(boxes=boxes_to_json(boxes), label=label)
            )
            return _row_sample(c.execute(sa.select(samples).where(*where)).one())

        try:
            return self._tx(tx)
        except IntegrityError:
            raise _relabel_conflict(label, None) from None

    def box_counts(self, project_id: str) -> tuple[dict[str, int], int]:
        """Boxes per label over a project's detection samples, and how many of those images
        have no boxes."""
        q = sa.select(t.samples.c.boxes).where(
            t.samples.c.project_id == project_id, t.samples.c.boxes.is_not(None)
        )
        counts: dict[str, int] = {}
        empty = 0

        def scan(c: Connection) -> None:
            nonlocal empty
            # Streamed in chunks: a large project never holds every annotation at once.
            for (boxes,) in c.execution_options(yield_per=1000).execute(q):
                if not boxes:
                    empty += 1
                for box in boxes or ():
                    counts[box["label"]] = counts.get(box["label"], 0) + 1

        self._read(scan)
        return counts, empty

    def class_counts(self, project_id: str) -> dict[str, int]:
        """Number of samples per label."""
        q = (
            sa.select(t.samples.c.label, sa.func.count())
            .where(t.samples.c.project_id == project_id)
            .group_by(t.samples.c.label)
        )
        return {label: int(n) for label, n in self._read(lambda c: c.execute(q).all())}

    def dataset_size(self, project_id: str) -> tuple[int, int]:
        """Sample count and total bytes of a project (its maintained counters)."""
        q = sa.select(t.projects.c.sample_count, t.projects.c.sample_bytes).where(
            t.projects.c.id == project_id
        )
        row = self._read(lambda c: c.execute(q).first())
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def referenced_blobs(self) -> set[str]:
        """sha256 keys referenced by any row (samples, upload chunks, models, federated).

        JSON columns are searched for every 64-hex-digit string, so a blob reference added to
        one of them later is kept without a change here (an extra match only keeps a blob).
        """
        json_columns = [
            (t.upload_sessions, ("chunks",)),
            (t.model_versions, ("artifacts", "manifest")),
            (t.federated_sessions, ("files", "bundle")),
            (t.federated_rounds, ("result",)),
        ]
        keys: set[str] = set()

        def collect(c: Connection) -> None:
            keys.update(r[0] for r in c.execute(sa.select(t.samples.c.sha256).distinct()))
            keys.update(r[0] for r in c.execute(sa.select(t.upload_sessions.c.sha256)))
            keys.update(r[0] for r in c.execute(sa.select(t.federated_sessions.c.weights_sha256)))
            # An open round's accepted updates live in the blob store (their row's payload).
            keys.update(
                r[0]
                for r in c.execute(
                    sa.select(t.federated_updates.c.payload).where(
                        t.federated_updates.c.payload != ""
                    )
                )
            )
            for table, names in json_columns:
                for row in c.execute(sa.select(*(table.c[n] for n in names))):
                    for value in row:
                        _hex_digests(value, keys)

        self._read(collect)
        keys.discard("")
        return keys

    def scan_samples(self, after: int, limit: int) -> tuple[list[Sample], int]:
        """Samples of every project after cursor ``after``; next cursor (0 = the end)."""
        q = (
            sa.select(t.samples)
            .where(t.samples.c.seq > after)
            .order_by(t.samples.c.seq)
            .limit(limit)
        )
        rows = self._read(lambda c: c.execute(q).all())
        next_cursor = int(rows[-1].seq) if len(rows) == limit else 0
        return [_row_sample(r) for r in rows], next_cursor

    def set_samples_damaged(self, sample_ids: Sequence[str], damaged: bool) -> int:
        """Mark (or clear) samples whose bytes are missing or damaged; returns how many changed."""
        if not sample_ids:
            return 0
        ids = list(sample_ids)

        def tx(c: Connection) -> int:
            changed = 0
            for start in range(0, len(ids), 500):  # bounded IN lists
                changed += c.execute(
                    t.samples.update()
                    .where(
                        t.samples.c.id.in_(ids[start : start + 500]),
                        t.samples.c.damaged != damaged,
                    )
                    .values(damaged=damaged)
                ).rowcount
            return changed

        return self._tx(tx)

    def damaged_samples(self, project_id: str | None = None) -> list[Sample]:
        """Samples marked damaged (of one project, or all), in upload order."""
        q = sa.select(t.samples).where(t.samples.c.damaged.is_(True))
        if project_id is not None:
            q = q.where(t.samples.c.project_id == project_id)
        rows = self._read(lambda c: c.execute(q.order_by(t.samples.c.seq)).all())
        return [_row_sample(r) for r in rows]
