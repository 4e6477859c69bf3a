"""Blob store against metadata store: which samples have lost their bytes.

``mobiletrain fsck`` runs :func:`check_integrity` with ``full=True``: every distinct blob a
sample refers to is read and its SHA-256 verified (the blob store's ``get`` does that), so a
truncated or bit-flipped pack is found. With ``repair=True`` the samples found are marked
damaged in the metadata store (training skips them, reports list them) and marked samples whose
bytes read fine again are cleared.

The server runs a quick check at start-up (``full=False``): existence only, no hashing, within
a time budget, so that a pack cut short is noticed (warning and health ``degraded``) without
delaying the start by a full read of every pack.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mobiletrain.core.ports import BlobStore, MetadataStore
from mobiletrain.core.types import Sample

MISSING = "missing"
DAMAGED = "damaged"


@dataclass
class DamagedSample:
    """A sample whose bytes could not be read back intact."""

    sample: Sample
    project: str  # the project's name
    problem: str  # MISSING or DAMAGED


@dataclass
class IntegrityReport:
    """What a check found."""

    full: bool
    samples_checked: int = 0
    blobs_checked: int = 0
    damaged: list[DamagedSample] = field(default_factory=list)
    marked: int = 0  # samples newly marked damaged (repair)
    cleared: int = 0  # marked samples whose bytes read fine again (repair)
    already_marked: int = 0  # samples that carried the mark before this check
    complete: bool = True  # False: the time budget ran out first
    seconds: float = 0.0

    @property
    def unmarked(self) -> list[DamagedSample]:
        """Damaged samples the metadata store does not know about (yet)."""
        return [d for d in self.damaged if not d.sample.damaged]

    def recheck(self, store: MetadataStore, blobs: BlobStore, limit: int = 200) -> None:
        """Drop findings that were dealt with since (sample marked by ``fsck --repair``,
        deleted, or its bytes uploaded again); looks at no more than ``limit`` of them."""
        resolved: set[str] = set()
        for found in self.unmarked[:limit]:
            now = store.get_sample(found.sample.project_id, found.sample.id)
            if now is None or now.damaged or blobs.exists(now.sha256):
                resolved.add(found.sample.id)
        if resolved:
            self.damaged = [d for d in self.damaged if d.sample.id not in resolved]

    def by_project_label(self) -> dict[tuple[str, str], int]:
        """Damaged samples counted per (project name, label)."""
        return dict(Counter((d.project, d.sample.label) for d in self.damaged))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``mobiletrain fsck --json``)."""
        return {
            "full": self.full,
            "complete": self.complete,
            "samples_checked": self.samples_checked,
            "blobs_checked": self.blobs_checked,
            "damaged": [
                {
                    "project": d.project,
                    "label": d.sample.label,
                    "client_id": d.sample.client_id,
                    "sample_id": d.sample.id,
                    "sha256": d.sample.sha256,
                    "problem": d.problem,
                    "marked": d.sample.damaged,
                }
                for d in self.damaged
            ],
            "marked": self.marked,
            "cleared": self.cleared,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """One line for logs and the CLI."""
        kind = "full" if self.full else "quick"
        line = (
            f"{kind} integrity check: {self.samples_checked} samples, {self.blobs_checked} blobs, "
            f"{len(self.damaged)} with missing or damaged bytes"
        )
        if self.damaged:
            missing = sum(d.problem == MISSING for d in self.damaged)
            line += f" ({missing} missing, {len(self.damaged) - missing} damaged)"
        if not self.complete:
            line += "; stopped early (time budget)"
        return line


def _probe(blobs: BlobStore, sha256: str, full: bool, known: set[str] | None = None) -> str | None:
    """MISSING, DAMAGED or None (intact) for one blob (``known``: the store's keys, if listed)."""
    if not full:
        if known is not None:
            return None if sha256 in known else MISSING
        return None if blobs.exists(sha256) else MISSING
    try:
        blobs.get(sha256)  # verifies the digest
    except KeyError:
        return MISSING
    except OSError:
        return DAMAGED
    return None


def check_integrity(
    store: MetadataStore,
    blobs: BlobStore,
    full: bool = True,
    repair: bool = False,
    budget_seconds: float | None = None,
    page_size: int = 1000,
) -> IntegrityReport:
    """Check every sample's bytes; see the module docstring.

    ``budget_seconds`` bounds the time (the report then says ``complete=False``); a quick check
    never repairs (existence alone cannot prove that marked samples are whole again).
    """
    started = time.monotonic()
    report = IntegrityReport(full=full)
    verdicts: dict[str, str | None] = {}  # sha256 -> problem (blobs are shared by samples)
    names: dict[str, str] = {}
    to_clear: list[str] = []
    listed = None if full else blobs.keys()  # one listing instead of a lookup per blob
    known = set(listed) if listed is not None else None
    cursor = 0
    while True:
        if budget_seconds is not None and time.monotonic() - started > budget_seconds:
            report.complete = False
            break
        samples, cursor = store.scan_samples(cursor, page_size)
        for sample in samples:
            report.samples_checked += 1
            report.already_marked += sample.damaged
            if sample.sha256 not in verdicts:
                verdicts[sample.sha256] = _probe(blobs, sample.sha256, full, known)
            problem = verdicts[sample.sha256]
            if problem is None:
                if sample.damaged:
                    to_clear.append(sample.id)
                continue
            if sample.project_id not in names:
                project = store.get_project(sample.project_id)
                names[sample.project_id] = project.name if project else sample.project_id
            report.damaged.append(DamagedSample(sample, names[sample.project_id], problem))
        if cursor == 0:
            break
    report.blobs_checked = len(verdicts)
    if repair and full and report.complete:
        report.marked = store.set_samples_damaged([d.sample.id for d in report.unmarked], True)
        report.cleared = store.set_samples_damaged(to_clear, False)
    report.seconds = time.monotonic() - started
    return report
