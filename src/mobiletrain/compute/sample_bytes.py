"""The bytes a training job reads, without dying of one lost sample.

A job meets damaged samples in two ways: marked by ``mobiletrain fsck --repair`` (the
``damaged`` flag), or found now because their bytes are missing or fail their SHA-256. Either
way the job **skips them and goes on** with a LOG event of level ``warning`` that names them
(project, label, client id), so the version's warnings say what it was trained without; it only
fails, with NOT_ENOUGH_DATA naming the count, when too few samples are left to train.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.ports import BlobStore
from mobiletrain.core.types import EventKind, Project, Sample

Emit = Callable[[EventKind, dict[str, Any]], None]

NAMED_IN_MESSAGE = 20
"""How many skipped samples the warning's message names (the event's data lists up to 1000)."""


def _describe(sample: Sample) -> str:
    return f"{sample.label}/{sample.client_id}"


Skipped = list[tuple[Sample, str]]
"""Samples left out, each with why: "marked damaged", "missing" or "damaged"."""


def read_sample_bytes(
    blobs: BlobStore, samples: Sequence[Sample]
) -> tuple[list[Sample], list[bytes], Skipped]:
    """The samples whose bytes read back intact, their bytes (in order), and the others."""
    usable = [s for s in samples if not s.damaged]
    skipped: Skipped = [(s, "marked damaged") for s in samples if s.damaged]
    try:
        return usable, blobs.get_many([s.sha256 for s in usable]), skipped  # concurrent on S3
    except (KeyError, OSError):
        pass  # some bytes are lost: read one by one to find out which
    kept: list[Sample] = []
    images: list[bytes] = []
    for sample in usable:
        try:
            images.append(blobs.get(sample.sha256))
        except KeyError:
            skipped.append((sample, "missing"))
            continue
        except OSError:
            skipped.append((sample, "damaged"))
            continue
        kept.append(sample)
    return kept, images, skipped


def skipped_event(project: Project, skipped: Skipped, what: str = "training") -> dict[str, Any]:
    """The data of the LOG event (level ``warning``) that names skipped samples."""
    names = ", ".join(_describe(s) for s, _ in skipped[:NAMED_IN_MESSAGE])
    more = len(skipped) - NAMED_IN_MESSAGE
    return {
        "level": "warning",
        "message": (
            f"{what} skipped {len(skipped)} samples of project {project.name!r} whose stored "
            f"bytes are missing or damaged (label/client id): {names}"
            + (f" and {more} more" if more > 0 else "")
            + "; upload them again to restore them, `mobiletrain fsck` lists them"
        ),
        "skipped_samples": [
            {
                "project": project.name,
                "label": s.label,
                "client_id": s.client_id,
                "sample_id": s.id,
                "problem": problem,
            }
            for s, problem in skipped[:1000]
        ],
    }


def load_training_bytes(
    blobs: BlobStore, project: Project, samples: Sequence[Sample], emit: Emit | None = None
) -> tuple[list[Sample], list[bytes]]:
    """The samples that can train and their bytes, in order; see the module docstring."""
    usable, images, skipped = read_sample_bytes(blobs, samples)
    check_skipped(project, usable, skipped, emit)
    return usable, images


def check_skipped(
    project: Project, usable: Sequence[Sample], skipped: Skipped, emit: Emit | None = None
) -> None:
    """After reading: name the skipped samples in a warning LOG event, and fail with
    NOT_ENOUGH_DATA when, because of them, fewer than two labels with two samples each are
    left (for callers that read in chunks, e.g. the worker)."""
    if not skipped:
        return
    if emit is not None:
        emit(EventKind.LOG, skipped_event(project, skipped))
    counts: dict[str, int] = {}
    for sample in usable:
        counts[sample.label] = counts.get(sample.label, 0) + 1
    if len(counts) < 2 or min(counts.values()) < 2:
        raise MobiletrainError(
            ErrorCode.NOT_ENOUGH_DATA,
            f"{len(skipped)} samples were skipped because their stored bytes are missing or "
            f"damaged; the {len(usable)} left are too few to train ({counts or 'none'})",
        )


class BlobSampleBytes(Sequence[bytes]):
    """A job's sample bytes read from the blob store on demand (streamed training).

    Stands in for the ``list[bytes]`` of :class:`~mobiletrain.compute.protocol.TrainingRequest`
    when the trainer streams (see ``compute/streaming.py``): it holds only the digests, so the
    worker's memory does not grow with the dataset. The worker checked every sample's bytes
    before (damaged ones are skipped then); bytes that vanish or break *after* that check fail
    the job with SAMPLE_DAMAGED naming the sample, never train on wrong data.
    """

    def __init__(self, blobs: BlobStore, sha256s: Sequence[str], sample_ids: Sequence[str]):
        self._blobs = blobs
        self._sha256s = list(sha256s)
        self._ids = list(sample_ids)

    def __len__(self) -> int:
        return len(self._sha256s)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self.get_many(range(len(self))[index])
        return self.get_many([index])[0]

    def get_many(self, indices: Sequence[int]) -> list[bytes]:
        """The bytes of samples ``indices`` (one blob-store round trip, concurrent on S3)."""
        keys = [self._sha256s[int(i)] for i in indices]
        try:
            return self._blobs.get_many(keys)
        except (KeyError, OSError):
            pass
        for i in indices:  # find the sample to name
            try:
                self._blobs.get(self._sha256s[int(i)])
            except (KeyError, OSError):
                raise MobiletrainError(
                    ErrorCode.SAMPLE_DAMAGED,
                    f"sample {self._ids[int(i)]}: its stored bytes went missing or were damaged "
                    "during training",
                    sample_id=self._ids[int(i)],
                ) from None
        return self._blobs.get_many(keys)  # pragma: no cover - a transient failure
