"""Samples: multipart and base64 uploads, listing, image bytes, deletion and class counts."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Form, Header, Query, Response, UploadFile, status

from mobiletrain.api.rest.deps import DatasetsDep, PageSize, PageToken, ProjectRef, SampleId
from mobiletrain.api.rest.errors import error_docs
from mobiletrain.api.rest.httputil import etag_matches, strong_etag
from mobiletrain.api.rest.schemas import (
    Base64SampleCreate,
    ClassCounts,
    SampleBoxesUpdate,
    SampleListPublic,
    SamplePublic,
    SampleRelabel,
    UploadSummaryPublic,
    class_counts_to_public,
    sample_to_public,
    upload_summary_to_public,
)
from mobiletrain.core.annotations import Box, boxes_from_json
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.services import IncomingSample
from mobiletrain.core.types import TaskType
from mobiletrain.core.validation import Limits, check_label

router = APIRouter(tags=["samples"], responses=error_docs(400, 404, 500))


def default_client_id(data: bytes, label: str, limits: Limits) -> str:
    """The idempotency key of a sample uploaded without one: ``sha256:<hex>:<label>``.

    When that would exceed the client id limit (labels over about 56 characters), the label
    part is replaced by ``#`` and the first 40 hex digits of the label's SHA-256.
    """
    digest = hashlib.sha256(data).hexdigest()
    client_id = f"sha256:{digest}:{label}"
    if len(client_id) > limits.max_client_id_length:
        label_digest = hashlib.sha256(label.encode("utf-8")).hexdigest()[:40]
        client_id = f"sha256:{digest}:#{label_digest}"
    return client_id


def _incoming(
    data: bytes,
    label: str,
    client_id: str | None,
    limits: Limits,
    boxes: list[Box] | None = None,
    detection: bool = False,
) -> IncomingSample:
    """An incoming sample, with the default client id when none was given (object detection:
    ``sha256:<hex>``, its label being the server's to derive)."""
    if client_id:
        return IncomingSample(client_id=client_id, label=label, data=data, boxes=boxes)
    if detection:
        cid = f"sha256:{hashlib.sha256(data).hexdigest()}"
        return IncomingSample(client_id=cid, label="", data=data, boxes=boxes)
    try:
        check_label(label, limits)  # report a bad label as such, not as a bad client id
    except MobiletrainError as exc:
        return IncomingSample(client_id="", label=label, data=data, error=exc)
    return IncomingSample(
        client_id=default_client_id(data, label, limits), label=label, data=data, boxes=boxes
    )


def parse_boxes(value: Any) -> list[Box] | None:
    """A request's boxes: None when absent, else a JSON list of box objects (a JSON string
    of one, from a form field); INVALID_ANNOTATION (120) when malformed."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except ValueError:
            raise MobiletrainError(
                ErrorCode.INVALID_ANNOTATION, "boxes is not valid JSON"
            ) from None
    return boxes_from_json(value)


def _parallel(name: str, values: Sequence[str] | None, count: int) -> list[str | None]:
    if values is None:
        return [None] * count
    if len(values) != count:
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT,
            f"{name} has {len(values)} values for {count} files; send one per file, in order",
        )
    return [v or None for v in values]


@router.post(
    "/projects/{project}/samples",
    responses=error_docs(413, 507),
    summary="Upload labelled images (multipart)",
)
def upload_samples(
    project: ProjectRef,
    datasets: DatasetsDep,
    files: Annotated[
        list[UploadFile],
        File(description="Image files (JPEG, PNG or WebP); repeat the field for each file."),
    ],
    label: Annotated[
        str | None, Form(description="One label for every file (or use `labels`).")
    ] = None,
    labels: Annotated[
        list[str] | None,
        Form(description="One label per file, repeated in the order of `files`."),
    ] = None,
    client_ids: Annotated[
        list[str] | None,
        Form(
            description=(
                "Optional idempotency keys, one per file in order; an empty value or no field "
                "= `sha256:<hex of the bytes>:<label>` (object detection: `sha256:<hex>`)."
            )
        ),
    ] = None,
    boxes: Annotated[
        list[str] | None,
        Form(
            description=(
                "Object-detection projects: one JSON array of boxes per file, in the order of "
                '`files` (`[{"label": "cat", "x_min": 0.1, "y_min": 0.2, "x_max": 0.5, '
                '"y_max": 0.6}]`; an empty value or `[]`: no boxes). A malformed or invalid '
                "box rejects that file with its code (120-124)."
            )
        ),
    ] = None,
) -> UploadSummaryPublic:
    """Upload many labelled images in one `multipart/form-data` request.

    Each file is validated on its own: a bad one is `rejected` with its error code
    (e.g. CORRUPT_IMAGE 26, UNKNOWN_LABEL 22, SAMPLE_TOO_LARGE 24) and the others are still
    stored. Re-sending a sample (same client id, or same bytes and label) reports it as
    `duplicate` and changes nothing, so retries are safe. The response is 200 whenever the
    request itself was well-formed; check `rejected` / each result's `status`.
    Fails as a whole with PROJECT_NOT_FOUND (404) or INVALID_ARGUMENT (400) when neither or
    both of `label` / `labels` are given or a list does not match the number of files.

    Object-detection projects take `boxes` (one JSON array per file) instead of labels: the
    server derives each image's label from its boxes (`label`/`labels` are ignored).
    """
    limits = datasets.limits
    detection = datasets.projects.get(project).task is TaskType.OBJECT_DETECTION  # fail fast
    if not detection and (label is None) == (labels is None):
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT, "give either `label` (for all files) or `labels` (per file)"
        )
    per_label = _parallel("labels", labels, len(files)) if labels is not None else None
    per_id = _parallel("client_ids", client_ids, len(files))
    per_boxes = _parallel("boxes", boxes, len(files))

    def incoming() -> Iterator[IncomingSample]:
        for i, upload in enumerate(files):
            lab = (per_label[i] if per_label is not None else label) or ""
            cid = per_id[i]
            try:
                file_boxes = parse_boxes(per_boxes[i])
            except MobiletrainError as exc:
                yield IncomingSample(client_id=cid or "", label=lab, data=b"", error=exc)
                continue
            if upload.size is not None and upload.size > limits.max_sample_bytes:
                yield IncomingSample(
                    client_id=cid or "",
                    label=lab,
                    data=b"",
                    error=MobiletrainError(
                        ErrorCode.SAMPLE_TOO_LARGE,
                        f"sample is {upload.size} bytes; the limit is {limits.max_sample_bytes}",
                    ),
                )
                continue
            data = upload.file.read(limits.max_sample_bytes + 1)
            yield _incoming(data, lab, cid, limits, file_boxes, detection)

    summary = datasets.upload(project, incoming())
    return upload_summary_to_public(summary, [f.filename for f in files])


def decode_base64(text: str) -> bytes:
    """Decode standard or URL-safe base64, with or without padding or a data: URL prefix."""
    try:  # the usual case, plain padded standard base64, without four copies of the text
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    value = text.strip()
    if value.startswith("data:"):
        head, sep, rest = value.partition(",")
        if not sep or not head.endswith(";base64"):
            raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "data URL is not base64")
        value = rest
    value = "".join(value.split()).replace("-", "+").replace("_", "/")
    value += "=" * (-len(value) % 4)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "image is not valid base64") from None


@router.post(
    "/projects/{project}/samples:base64",
    responses=error_docs(413, 507),
    summary="Upload labelled images (JSON, base64)",
)
def upload_samples_base64(
    project: ProjectRef,
    datasets: DatasetsDep,
    body: Annotated[
        Base64SampleCreate | list[Base64SampleCreate],
        Body(description="One sample object, or a JSON array of them."),
    ],
) -> UploadSummaryPublic:
    """Upload one or many base64-encoded images as JSON (`{"image", "label", "client_id"?}`;
    object-detection projects: `{"image", "boxes", "client_id"?}`).

    Same per-sample results as the multipart upload; a sample whose `image` is not valid
    base64 is rejected with INVALID_ARGUMENT (code 2) and the others are stored.
    """
    items = body if isinstance(body, list) else [body]
    limits = datasets.limits
    detection = datasets.projects.get(project).task is TaskType.OBJECT_DETECTION
    if not detection and any(item.label is None for item in items):
        raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "every sample needs a `label`")

    def incoming() -> Iterator[IncomingSample]:
        for item in items:
            label = item.label or ""
            try:
                data = decode_base64(item.image)
                item_boxes = parse_boxes(item.boxes)
            except MobiletrainError as exc:
                yield IncomingSample(item.client_id or "", label, b"", error=exc)
                continue
            yield _incoming(data, label, item.client_id, limits, item_boxes, detection)

    # One image per request (the simplest clients): a list, so it is verified on this thread.
    samples = list(incoming()) if len(items) == 1 else incoming()
    return upload_summary_to_public(datasets.upload(project, samples))


@router.get("/projects/{project}/samples", summary="List samples")
def list_samples(
    project: ProjectRef,
    datasets: DatasetsDep,
    label: Annotated[str | None, Query(description="Only samples with this label.")] = None,
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> SampleListPublic:
    """List a project's samples in upload order, a page at a time."""
    page = datasets.list(project, label, page_size, page_token)
    return SampleListPublic(
        samples=[sample_to_public(s) for s in page.items], next_page_token=page.next_page_token
    )


@router.get("/projects/{project}/samples/{sample_id}", summary="Get a sample")
def get_sample(project: ProjectRef, sample_id: SampleId, datasets: DatasetsDep) -> SamplePublic:
    """Get one sample's metadata (SAMPLE_NOT_FOUND, 404, code 20)."""
    return sample_to_public(datasets.get(project, sample_id))


@router.get(
    "/projects/{project}/samples/{sample_id}/data",
    response_class=Response,
    responses={
        200: {
            "description": "The sample's bytes, with its media type (an image, a WAV "
            "recording, or sensor readings as CSV or JSON, by the project's task).",
            "content": {
                "image/jpeg": {},
                "image/png": {},
                "image/webp": {},
                "audio/wav": {},
                "text/csv": {},
                "application/json": {},
            },
        },
        **error_docs(304),
    },
    summary="Download a sample's bytes",
)
def get_sample_data(
    project: ProjectRef,
    sample_id: SampleId,
    datasets: DatasetsDep,
    if_none_match: Annotated[
        str | None, Header(description="ETag from an earlier download; 304 if unchanged.")
    ] = None,
) -> Response:
    """Download the bytes of a sample (image thumbnails, audio, sensor readings) with the
    media type stored at upload. The ETag is the bytes' SHA-256;
    a sample's bytes never change, so caches may keep them."""
    sample = datasets.get(project, sample_id)
    etag = strong_etag(sample.sha256)
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
    if etag_matches(if_none_match, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    _, data = datasets.get_data(project, sample_id)
    return Response(content=data, media_type=sample.media_type, headers=headers)


@router.delete(
    "/projects/{project}/samples/{sample_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a sample",
)
def delete_sample(project: ProjectRef, sample_id: SampleId, datasets: DatasetsDep) -> Response:
    """Delete a sample (SAMPLE_NOT_FOUND, 404, code 20, if it does not exist)."""
    datasets.delete(project, sample_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch(
    "/projects/{project}/samples/{sample_id}",
    responses=error_docs(409),
    summary="Relabel a sample",
)
def relabel_sample(
    project: ProjectRef, sample_id: SampleId, body: SampleRelabel, datasets: DatasetsDep
) -> SamplePublic:
    """Give a sample another label. Fails with SAMPLE_NOT_FOUND (404, code 20), INVALID_LABEL
    (400, 21), UNKNOWN_LABEL (400, 22) for a label outside a fixed label set, and ALREADY_EXISTS
    (409, code 4) when the project already has the same image with that label. An open label
    set gains the new label."""
    return sample_to_public(datasets.relabel(project, sample_id, body.label))


@router.put(
    "/projects/{project}/samples/{sample_id}/boxes",
    responses=error_docs(409),
    summary="Replace an image's boxes (object detection)",
)
def update_sample_boxes(
    project: ProjectRef,
    sample_id: SampleId,
    datasets: DatasetsDep,
    body: Annotated[
        Any,
        Body(
            description='`{"boxes": [...]}`: every box of the image (`[]`: none).',
            json_schema_extra=SampleBoxesUpdate.model_json_schema(),
        ),
    ],
) -> SamplePublic:
    """Replace the boxes of an object-detection image; returns the sample, whose `label`
    follows (its most frequent box label, or `_no_boxes_`). Same rights as relabelling.
    Fails with SAMPLE_NOT_FOUND (404, 20), INVALID_ANNOTATION (400, 120: malformed body or
    not a detection sample), BOX_OUT_OF_IMAGE (121), BOX_DEGENERATE (122), UNKNOWN_BOX_LABEL
    (123), TOO_MANY_BOXES (124), or ALREADY_EXISTS (409, 4) when the project has the same image
    under the new label."""
    if not isinstance(body, dict) or set(body) != {"boxes"}:
        raise MobiletrainError(
            ErrorCode.INVALID_ANNOTATION, 'the body must be {"boxes": [...]} and nothing else'
        )
    return sample_to_public(
        datasets.update_boxes(project, sample_id, boxes_from_json(body["boxes"]))
    )


@router.get(
    "/projects/{project}/class-counts",
    summary="Count samples per label",
    # box_counts / images_without_boxes appear for detection projects only.
    response_model_exclude_none=True,
)
def class_counts(project: ProjectRef, datasets: DatasetsDep) -> ClassCounts:
    """Number of samples per label, including labels that have none yet; object-detection
    projects also get `box_counts` (boxes per label) and `images_without_boxes`."""
    counts = datasets.class_counts(project)
    detection = datasets.projects.get(project).task is TaskType.OBJECT_DETECTION
    return class_counts_to_public(counts, datasets.box_stats(project) if detection else None)
