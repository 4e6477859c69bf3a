"""REST shapes of samples and uploads, and their conversions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mobiletrain.core.annotations import MAX_BOXES, Box
from mobiletrain.core.services import BoxStats
from mobiletrain.core.types import (
    Sample,
    SampleStatus,
    UploadSummary,
)

BOX_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["label", "x_min", "y_min", "x_max", "y_max"],
    "properties": {
        "label": {"type": "string"},
        "x_min": {"type": "number", "minimum": 0, "maximum": 1},
        "y_min": {"type": "number", "minimum": 0, "maximum": 1},
        "x_max": {"type": "number", "minimum": 0, "maximum": 1},
        "y_max": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
"""JSON schema of one box (documentation; the server checks boxes itself, codes 120-124)."""

BOXES_SCHEMA: dict[str, Any] = {"type": "array", "maxItems": MAX_BOXES, "items": BOX_SCHEMA}


class BoxPublic(BaseModel):
    """One labelled box, coordinates normalised to 0..1 of the image (origin top-left)."""

    label: str = Field(description="The object's label.")
    x_min: float = Field(description="Left edge, 0..1.")
    y_min: float = Field(description="Top edge, 0..1.")
    x_max: float = Field(description="Right edge, 0..1.")
    y_max: float = Field(description="Bottom edge, 0..1.")


class SampleBoxesUpdate(BaseModel):
    """Body of `PUT /v1/projects/{project}/samples/{sample_id}/boxes` (documentation shape;
    the route reads the JSON itself so a malformed box gets INVALID_ANNOTATION, code 120)."""

    boxes: list[BoxPublic] = Field(
        description="Every box of the image (empty: the image has none), at most 100."
    )


class SamplePublic(BaseModel):
    """A stored labelled image."""

    id: str = Field(description="Sample id (UUID).")
    project_id: str = Field(description="Id of the project the sample belongs to.")
    client_id: str = Field(description="Client-chosen idempotency key of the upload.")
    label: str = Field(description="The sample's label.")
    sha256: str = Field(description="Lower-case hex SHA-256 of the image bytes.")
    size: int = Field(description="Size of the image in bytes.")
    media_type: str = Field(description="`image/jpeg`, `image/png` or `image/webp`.")
    width: int = Field(description="Image width in pixels.")
    height: int = Field(description="Image height in pixels.")
    created_at: datetime = Field(description="Upload time (UTC, ISO 8601).")
    data_url: str = Field(description="Relative URL of the image bytes (for thumbnails).")
    damaged: bool = Field(
        default=False,
        description="Its stored bytes were found missing or damaged (`mobiletrain fsck "
        "--repair`): training skips it, its `data_url` answers SAMPLE_DAMAGED (code 31); "
        "uploading the same bytes again restores it.",
    )
    boxes: list[BoxPublic] | None = Field(
        default=None,
        description="Object detection: the image's boxes ([]: an image without boxes; its "
        "`label` is then `_no_boxes_`, else its most frequent box label). null for samples of "
        "other task kinds.",
    )


class SampleListPublic(BaseModel):
    """A page of samples."""

    samples: list[SamplePublic] = Field(description="Samples in upload order.")
    next_page_token: str = Field(description="Token of the next page; empty on the last page.")


class SampleResultPublic(BaseModel):
    """Outcome of one uploaded sample."""

    index: int = Field(description="Position of the sample in the request, from 0.")
    filename: str | None = Field(
        default=None, description="File name of the multipart part, when one was sent."
    )
    client_id: str = Field(description="Idempotency key used for the sample.")
    status: str = Field(
        json_schema_extra={"enum": [s.value for s in SampleStatus]},
        description=(
            "`accepted`: stored now; `duplicate`: already stored earlier (same client id or "
            "same bytes and label), nothing changed; `rejected`: not stored, see `error_code`."
        ),
    )
    sample_id: str | None = Field(
        default=None, description="Id of the stored sample (the earlier one for duplicates)."
    )
    error_code: int | None = Field(
        default=None, description="Numeric error code of a rejected sample, e.g. 26."
    )
    error: str | None = Field(
        default=None, description="Error name of a rejected sample, e.g. `corrupt_image`."
    )
    reason: str = Field(
        default="", description="Why the sample was rejected (or a note on a duplicate)."
    )


class UploadSummaryPublic(BaseModel):
    """Reply of an upload: one result per sample in request order, plus totals."""

    results: list[SampleResultPublic] = Field(description="One result per sample, in order.")
    total: int = Field(description="Number of samples in the request.")
    accepted: int = Field(description="Number of samples stored now.")
    duplicate: int = Field(description="Number of samples that were already stored.")
    rejected: int = Field(description="Number of samples refused.")


class Base64SampleCreate(BaseModel):
    """One sample as JSON with the image base64-encoded."""

    model_config = ConfigDict(strict=True)

    image: str = Field(
        description=(
            "The encoded JPEG, PNG or WebP file in base64 (standard or URL-safe alphabet, "
            "padding optional; a `data:image/...;base64,` prefix is allowed)."
        )
    )
    label: str | None = Field(
        default=None,
        description="The sample's label (required, except for object-detection projects, "
        "whose sample labels the server derives from the boxes).",
    )
    client_id: str | None = Field(
        default=None,
        description=(
            "Idempotency key; omitted = `sha256:<hex of the image bytes>:<label>` so that "
            "retrying the same upload never duplicates it (object detection: "
            "`sha256:<hex>`)."
        ),
    )
    boxes: Any = Field(
        default=None,
        json_schema_extra=BOXES_SCHEMA,
        description="Object-detection projects: the image's boxes (omitted or []: none). A "
        "malformed or invalid box rejects this sample with its code (120-124).",
    )


class SampleRelabel(BaseModel):
    """Body of `PATCH /v1/projects/{project}/samples/{sample_id}`."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(description="The sample's new label (one of a fixed label set).")


class ClassCounts(BaseModel):
    """Samples per label."""

    counts: dict[str, int] = Field(
        description="Number of samples per label, in label order, including labels with 0."
    )
    total: int = Field(description="Total number of samples.")
    box_counts: dict[str, int] | None = Field(
        default=None,
        description="Object detection: boxes per label, in label order, including labels "
        "with 0 (absent for other task kinds).",
    )
    images_without_boxes: int | None = Field(
        default=None,
        description="Object detection: number of images without boxes (label `_no_boxes_`; "
        "absent for other task kinds).",
    )


def sample_data_url(project_id: str, sample_id: str) -> str:
    """Relative URL of a sample's bytes."""
    return f"/v1/projects/{project_id}/samples/{sample_id}/data"


def sample_to_public(sample: Sample) -> SamplePublic:
    """Domain sample → response shape."""
    return SamplePublic(
        id=sample.id,
        project_id=sample.project_id,
        client_id=sample.client_id,
        label=sample.label,
        sha256=sample.sha256,
        size=sample.size,
        media_type=sample.media_type,
        width=sample.width,
        height=sample.height,
        created_at=sample.created_at,
        data_url=sample_data_url(sample.project_id, sample.id),
        damaged=sample.damaged,
        boxes=None if sample.boxes is None else [boxes_to_public(b) for b in sample.boxes],
    )


def boxes_to_public(box: Box) -> BoxPublic:
    """Domain box → response shape."""
    return BoxPublic(
        label=box.label, x_min=box.x_min, y_min=box.y_min, x_max=box.x_max, y_max=box.y_max
    )


def upload_summary_to_public(
    summary: UploadSummary, filenames: Sequence[str | None] = ()
) -> UploadSummaryPublic:
    """Domain upload summary → response shape (``filenames`` parallel to the results)."""
    results = []
    for i, r in enumerate(summary.results):
        results.append(
            SampleResultPublic(
                index=i,
                filename=filenames[i] if i < len(filenames) else None,
                client_id=r.client_id,
                status=r.status.value,
                sample_id=r.sample_id,
                error_code=r.error_code.number if r.error_code else None,
                error=r.error_code.slug if r.error_code else None,
                reason=r.reason,
            )
        )
    return UploadSummaryPublic(
        results=results,
        total=len(results),
        accepted=summary.count(SampleStatus.ACCEPTED),
        duplicate=summary.count(SampleStatus.DUPLICATE),
        rejected=summary.count(SampleStatus.REJECTED),
    )


def class_counts_to_public(counts: dict[str, int], boxes: BoxStats | None = None) -> ClassCounts:
    """Label → count mapping (and a detection project's box counts) → response shape."""
    return ClassCounts(
        counts=dict(counts),
        total=sum(counts.values()),
        box_counts=None if boxes is None else dict(boxes.boxes_per_label),
        images_without_boxes=None if boxes is None else boxes.images_without_boxes,
    )
