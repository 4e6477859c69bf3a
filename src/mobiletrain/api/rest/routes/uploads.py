"""Resumable uploads of large samples over HTTP, in the spirit of tus.

1. ``POST /v1/projects/{project}/uploads`` with the sample's client id, label, size (and
   sha256): opens the upload, or finds it again after an interruption, and says the offset.
2. ``PATCH /v1/uploads/{id}`` with ``Upload-Offset: <offset>`` and the next bytes as the body
   (optionally ``Upload-Checksum: sha256 <base64>``): a wrong offset is a 409 conflict that
   tells the right one; a checksum mismatch discards the chunk. The chunk that completes the
   sample returns its ingest result.
3. ``HEAD``/``GET /v1/uploads/{id}`` tell the offset; ``DELETE`` aborts.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response, status
from pydantic import BaseModel, Field

from mobiletrain.api.rest.deps import ContainerDep, ProjectRef
from mobiletrain.api.rest.errors import error_docs
from mobiletrain.api.rest.schemas import SampleResultPublic, upload_summary_to_public
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import UploadSummary
from mobiletrain.core.uploads import UploadStatus

router = APIRouter(tags=["uploads"], responses=error_docs(400, 404, 500))

UploadId = Annotated[str, Path(description="Upload id from the POST that opened it.")]


class UploadCreate(BaseModel):
    """A large sample about to be sent in chunks."""

    client_id: str = Field(description="The sample's idempotency key (also the resume key).")
    label: str = Field(description="The sample's label.")
    size: int = Field(description="Total size in bytes.")
    sha256: str = Field(default="", description="Optional hex SHA-256 of all the bytes.")


class UploadPublic(BaseModel):
    """Where a resumable upload stands."""

    id: str | None = Field(description="Upload id; null when the sample is already stored.")
    client_id: str = Field(description="The sample's client id.")
    offset: int = Field(description="Bytes the server holds: send the next chunk from here.")
    size: int = Field(description="Declared total size.")
    complete: bool = Field(description="True when the sample is stored (nothing to send).")
    expires_at: datetime | None = Field(description="When an unfinished upload is forgotten.")
    result: SampleResultPublic | None = Field(
        default=None, description="The ingest result, once the last chunk arrived."
    )


def _public(status_: UploadStatus) -> UploadPublic:
    session = status_.session
    stored = status_.sample is not None
    return UploadPublic(
        id=session.id if session else None,
        client_id=status_.client_id,
        offset=status_.offset,
        size=status_.size,
        complete=stored,
        expires_at=session.expires_at if session else None,
        result=None,
    )


def _offset_headers(offset: int, size: int) -> dict[str, str]:
    return {"Upload-Offset": str(offset), "Upload-Length": str(size), "Cache-Control": "no-store"}


@router.post(
    "/projects/{project}/uploads",
    status_code=status.HTTP_201_CREATED,
    responses=error_docs(409, 413, 507),
    summary="Open (or resume) a resumable upload",
)
def open_upload(project: ProjectRef, body: UploadCreate, container: ContainerDep) -> UploadPublic:
    """Open the upload of one large sample, or find it again after an interruption.

    The answer's `offset` is where to send from (0 for a new upload). If the sample is stored
    already, `complete` is true and nothing needs to be sent.
    """
    return _public(
        container.uploads.open(project, body.client_id, body.label, body.size, body.sha256)
    )


@router.api_route(
    "/uploads/{upload_id}",
    methods=["HEAD"],
    status_code=status.HTTP_200_OK,
    response_class=Response,  # headers only: no JSON body to document
    summary="Offset of a resumable upload (headers only)",
)
def head_upload(upload_id: UploadId, container: ContainerDep) -> Response:
    """`Upload-Offset` and `Upload-Length` headers, as in tus."""
    session = container.uploads.get(upload_id)
    return Response(headers=_offset_headers(session.offset, session.size))


@router.get("/uploads/{upload_id}", summary="State of a resumable upload")
def get_upload(upload_id: UploadId, container: ContainerDep) -> UploadPublic:
    """The offset to send from (UPLOAD_NOT_FOUND, 404, code 82, once finished or expired)."""
    session = container.uploads.get(upload_id)
    return _public(UploadStatus(session.client_id, session.offset, session.size, session, None))


def _checksum(value: str | None) -> bytes | None:
    if not value:
        return None
    algorithm, _, encoded = value.partition(" ")
    if algorithm.lower() != "sha256":
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT, "Upload-Checksum must be 'sha256 <base64 digest>'"
        )
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT, "Upload-Checksum digest is not base64"
        ) from None


@router.patch(
    "/uploads/{upload_id}",
    responses=error_docs(409, 413, 507),
    summary="Send the next chunk of a resumable upload",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The next bytes of the sample.",
            "content": {"application/offset+octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def patch_upload(
    upload_id: UploadId,
    request: Request,
    container: ContainerDep,
    upload_offset: Annotated[
        int, Header(description="Where this chunk starts; must equal the server's offset.")
    ],
    upload_checksum: Annotated[
        str | None, Header(description="Optional `sha256 <base64 digest>` of this chunk.")
    ] = None,
) -> UploadPublic:
    """Append a chunk at exactly `Upload-Offset`.

    A different offset is UPLOAD_OFFSET_MISMATCH (409, code 80; `details.offset` is the right
    one); a checksum mismatch is CHECKSUM_MISMATCH (400, code 81) and the chunk is discarded.
    The chunk that completes the sample ingests it and returns its `result`.
    """
    from starlette.concurrency import run_in_threadpool

    limit = container.settings.max_sample_bytes
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > limit:
            raise MobiletrainError(ErrorCode.SAMPLE_TOO_LARGE, f"a chunk may be {limit} bytes")
    checksum = _checksum(upload_checksum)
    session = await run_in_threadpool(
        container.uploads.append, upload_id, upload_offset, bytes(data), checksum
    )
    public = _public(UploadStatus(session.client_id, session.offset, session.size, session, None))
    if session.offset == session.size:
        result = await run_in_threadpool(container.uploads.finish, upload_id)
        public.result = upload_summary_to_public(UploadSummary([result])).results[0]
        public.complete = result.sample_id is not None
        public.id = None
    return public


@router.delete(
    "/uploads/{upload_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Abort an upload"
)
def delete_upload(upload_id: UploadId, container: ContainerDep) -> Response:
    """Forget an unfinished upload."""
    container.uploads.abort(upload_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
