"""Model registry: versions, manifests, resumable downloads, update checks, promotion, predict."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from mobiletrain.api.rest.deps import ModelsDep, PageSize, PageToken, ProjectRef, VersionRef
from mobiletrain.api.rest.errors import error_docs, error_response
from mobiletrain.api.rest.httputil import (
    RangeNotSatisfiable,
    attachment,
    etag_matches,
    parse_range,
    strong_etag,
)
from mobiletrain.api.rest.routes.samples import decode_base64
from mobiletrain.api.rest.schemas import (
    Base64PredictRequest,
    ModelListPublic,
    ModelVersionPublic,
    PredictionPublic,
    PromoteRequest,
    ReleaseHistoryPublic,
    ReleasePolicyModel,
    ReleasePolicyPublic,
    RollbackRequest,
    UpdateCheckPublic,
    download_url,
    model_version_to_public,
    prediction_to_public,
    release_policy_from_model,
    release_policy_to_public,
    release_record_to_public,
)
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.services import (
    DEFAULT_RELEASES_LIMIT,
    DEFAULT_TOP_K,
    ModelService,
    Prediction,
)
from mobiletrain.core.types import DEFAULT_MODEL_FORMAT, ModelFormat, ModelVersion

router = APIRouter(tags=["models"], responses=error_docs(400, 404, 409, 500))

FormatQuery = Annotated[
    str,
    Query(
        alias="format",
        description=f"Export format: {', '.join(f.value for f in ModelFormat)}.",
        json_schema_extra={"enum": [f.value for f in ModelFormat]},
    ),
]


def parse_version(value: str) -> int:
    """A version path segment: a number, or `current` (= 0, the current version)."""
    text = value.strip().lower()
    if text == "current":
        return 0
    # ASCII only: str.isdigit() also accepts digits (superscripts, ...) that int() refuses.
    if text.isascii() and text.isdigit() and len(text) <= 9:
        return int(text)
    raise MobiletrainError(
        ErrorCode.INVALID_ARGUMENT, f"version must be a number or 'current', got {value!r}"
    )


def _current(models: ModelService, project: str) -> int | None:
    return models.current_version_number(models.projects.get(project))


def _public(models: ModelService, project: str, model: ModelVersion) -> ModelVersionPublic:
    return model_version_to_public(model, _current(models, project))


@router.get("/projects/{project}/models", summary="List model versions")
def list_models(
    project: ProjectRef, models: ModelsDep, page_size: PageSize = 0, page_token: PageToken = ""
) -> ModelListPublic:
    """A page of a project's model versions, newest first, and which one is current."""
    page, current = models.list_page(project, page_size, page_token)
    return ModelListPublic(
        versions=[model_version_to_public(v, current) for v in page.items],
        current_version=current,
        next_page_token=page.next_page_token,
    )


@router.get(
    "/projects/{project}/models:check-update",
    summary="Check whether the app's model is current",
)
def check_update(
    project: ProjectRef,
    models: ModelsDep,
    fmt: FormatQuery = DEFAULT_MODEL_FORMAT.value,
    sha256: Annotated[
        str, Query(description="SHA-256 of the model file the app has (preferred).")
    ] = "",
    version: Annotated[
        int, Query(description="Version the app has, used when `sha256` is empty; 0 = none.")
    ] = 0,
) -> UpdateCheckPublic:
    """Cheap poll for apps: `not_modified` is true when the app's file (by SHA-256, else by
    version) is the current version's file in `format`; otherwise download `download_url`.
    Fails with NO_MODEL (409, code 53) while there is no model, FORMAT_NOT_FOUND (404, 51)."""
    not_modified, model, artifact = models.check_update(project, fmt, sha256, version)
    return UpdateCheckPublic(
        not_modified=not_modified,
        version=model.version,
        format=artifact.format.value,
        sha256=artifact.sha256,
        size=artifact.size,
        download_url=download_url(model.project_id, model.version, artifact.format.value),
        model=_public(models, project, model),
    )


@router.get("/projects/{project}/models/{version}", summary="Get a model version")
def get_model(project: ProjectRef, version: VersionRef, models: ModelsDep) -> ModelVersionPublic:
    """One model version (MODEL_NOT_FOUND 404 code 50; NO_MODEL 409 code 53 for `current`
    while there is none)."""
    return _public(models, project, models.get(project, parse_version(version)))


@router.get(
    "/projects/{project}/models/{version}/manifest",
    summary="Get a version's manifest.json",
    responses={200: {"description": "The manifest JSON object, as shipped with the model."}},
)
def get_manifest(project: ProjectRef, version: VersionRef, models: ModelsDep) -> dict[str, Any]:
    """The version's `manifest.json`: labels in output order, input preprocessing
    (`input_spec`), files with sizes and SHA-256, dataset and metrics information."""
    return models.get(project, parse_version(version)).manifest


@router.get(
    "/projects/{project}/models/{version}/metrics",
    summary="Get a version's full evaluation",
    responses={200: {"description": "The version's metrics JSON object."}},
)
def get_metrics(project: ProjectRef, version: VersionRef, models: ModelsDep) -> dict[str, Any]:
    """Everything measured on the validation split: `accuracy`, `loss`, `macro_f1`, `labels`,
    `per_class` (precision, recall, F1, support), `confusion_matrix` (rows = true label),
    `tflite` (LiteRT results per format), `misclassified` (`sample_id`, `label`, `predicted`,
    `score`; at most 100), `history` (per-epoch curves) and `split` (seed, fraction,
    `validation_ids`, `num_train`). Used by the dashboard's evaluation view."""
    metrics = dict(models.get(project, parse_version(version)).metrics)
    split = metrics.get("split")
    if isinstance(split, dict) and "train_ids" in split:
        # The training ids can be long and nothing shows them; the count is enough.
        split = {k: v for k, v in split.items() if k != "train_ids"}
        split["num_train"] = len(metrics["split"]["train_ids"])
        metrics["split"] = split
    return metrics


@router.get(
    "/projects/{project}/models/{version}/download",
    response_class=Response,
    responses={
        200: {
            "description": "The whole file.",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        },
        206: {
            "description": "The requested byte range (`Content-Range` header).",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        },
        **error_docs(304, 416),
    },
    summary="Download a model file",
)
def download_model(
    project: ProjectRef,
    version: VersionRef,
    models: ModelsDep,
    fmt: FormatQuery = DEFAULT_MODEL_FORMAT.value,
    range_header: Annotated[
        str | None,
        Header(
            alias="range",
            description="`bytes=a-b`, `bytes=a-` or `bytes=-n` to resume a download.",
        ),
    ] = None,
    if_range: Annotated[
        str | None,
        Header(description="Honour `Range` only if the file still has this ETag."),
    ] = None,
    if_none_match: Annotated[
        str | None, Header(description="ETag the app has; 304 when still current.")
    ] = None,
) -> Response:
    """Download one file of a version (`.tflite`, or `.keras` for format `keras`).

    Headers: `ETag: "<sha256>"`, `Content-Length`, `Accept-Ranges: bytes`,
    `X-Model-Version` (the resolved number), `X-Content-Sha256`, `X-Model-Format`,
    `Content-Disposition`. `If-None-Match` with the ETag gives 304. A `Range` gives 206 with
    `Content-Range`; one outside the file gives 416 (INVALID_RANGE, code 54). To resume
    safely, pin the version from `X-Model-Version` and send `If-Range` with the ETag.
    """
    model, artifact = models.artifact(project, parse_version(version), fmt)
    model_format = artifact.format
    etag = strong_etag(artifact.sha256)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "X-Model-Version": str(model.version),
        "X-Model-Format": model_format.value,
        "X-Content-Sha256": artifact.sha256,
        "Content-Disposition": attachment(
            model_format.download_name(models.projects.get(project).name, model.version)
        ),
        # A numbered version never changes; "current" may move to another version.
        "Cache-Control": "no-cache" if parse_version(version) == 0 else "private, max-age=86400",
    }
    if etag_matches(if_none_match, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    byte_range = None
    if range_header is not None and (if_range is None or etag_matches(if_range, etag)):
        try:
            byte_range = parse_range(range_header, artifact.size)
        except RangeNotSatisfiable:
            err = MobiletrainError(
                ErrorCode.INVALID_RANGE,
                f"range {range_header!r} is outside the file of {artifact.size} bytes",
            )
            return error_response(
                err, headers={**headers, "Content-Range": f"bytes */{artifact.size}"}
            )
    if byte_range is None:
        headers["Content-Length"] = str(artifact.size)
        return StreamingResponse(
            models.read(artifact), media_type="application/octet-stream", headers=headers
        )
    start, end = byte_range
    length = end - start + 1
    headers["Content-Length"] = str(length)
    headers["Content-Range"] = f"bytes {start}-{end}/{artifact.size}"
    return StreamingResponse(
        models.read(artifact, start, length),
        status_code=status.HTTP_206_PARTIAL_CONTENT,
        media_type="application/octet-stream",
        headers=headers,
    )


@router.post(
    "/projects/{project}/models/{version}:promote", summary="Make a version the current one"
)
def promote_model(
    project: ProjectRef,
    version: VersionRef,
    models: ModelsDep,
    body: PromoteRequest | None = None,
) -> ModelVersionPublic:
    """Make `version` the one apps get (`current`), a candidate too, whatever the release gate
    said; recorded in the release history. `pin` keeps new versions candidates until the next
    promotion. Version `0` removes the promotion, so the newest released version is current
    again; the reply is then that version."""
    text = version.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT, f"version must be a number, got {version!r}"
        )
    options = body or PromoteRequest()
    model = models.promote(project, int(text), pin=options.pin, reason=options.reason)
    return _public(models, project, model)


@router.post(
    "/projects/{project}/models:rollback",
    summary="Make the previous current version current again",
    responses=error_docs(409),
)
def rollback_model(
    project: ProjectRef, models: ModelsDep, body: RollbackRequest | None = None
) -> ModelVersionPublic:
    """Undo the last change of the current version: the version that was current before it is
    current again (recorded in the release history). NO_PREVIOUS_VERSION (409, code 57) when
    there is none."""
    options = body or RollbackRequest()
    return _public(models, project, models.rollback(project, reason=options.reason))


@router.get("/projects/{project}/releases", summary="Release history")
def list_releases(
    project: ProjectRef,
    models: ModelsDep,
    limit: Annotated[
        int, Query(description=f"Most records, 1..1000; 0 = {DEFAULT_RELEASES_LIMIT}.")
    ] = 0,
) -> ReleaseHistoryPublic:
    """Which version was current when, and why: every promotion by the release gate, every
    promotion and rollback by a person, newest first."""
    return ReleaseHistoryPublic(
        releases=[release_record_to_public(r) for r in models.history(project, limit)]
    )


@router.get("/projects/{project}/release-policy", summary="Get the release policy")
def get_release_policy(project: ProjectRef, models: ModelsDep) -> ReleasePolicyPublic:
    """The project's release gate rules (the defaults when never set) and whether the current
    version is pinned."""
    policy, pinned = models.policy(project)
    return release_policy_to_public(policy, pinned, models.rollout(project))


@router.put("/projects/{project}/release-policy", summary="Set the release policy")
def set_release_policy(
    project: ProjectRef, models: ModelsDep, body: ReleasePolicyModel
) -> ReleasePolicyPublic:
    """Replace the release gate rules. `mode: manual` never promotes; `margin` is how much
    less accurate than the current version a new one may be; the floors are optional.
    INVALID_RELEASE_POLICY (400, code 56) for a value outside 0..1."""
    models.set_policy(project, release_policy_from_model(body))
    policy, pinned = models.policy(project)
    return release_policy_to_public(policy, pinned, models.rollout(project))


@router.post(
    "/projects/{project}/predict",
    responses=error_docs(413, 415),
    summary="Classify a sample on the server (multipart)",
)
async def predict(
    project: ProjectRef,
    models: ModelsDep,
    file: Annotated[
        UploadFile,
        File(
            description="One sample of the project's kind: an image, a WAV clip, a sensor CSV/JSON."
        ),
    ],
    version: Annotated[int, Form(description="Model version; 0 = the current version.")] = 0,
    top_k: Annotated[int, Form(description=f"Number of best classes; 0 = {DEFAULT_TOP_K}.")] = 0,
) -> PredictionPublic:
    """Run the version's best classifier file in LiteRT on one sample, decoded and preprocessed
    as the project's task kind and input spec say (handy to compare with on-device results).
    Fails with NO_MODEL, MODEL_NOT_FOUND, FORMAT_NOT_FOUND, or the upload's validation codes for
    the kind (UNSUPPORTED_MEDIA_TYPE, CORRUPT_IMAGE, CORRUPT_AUDIO, CORRUPT_SENSOR_DATA ...)."""
    data = await file.read(models.projects.limits.max_sample_bytes + 1)
    return prediction_to_public(*await _predict(models, project, data, version, top_k))


@router.post(
    "/projects/{project}/predict:base64",
    responses=error_docs(413, 415),
    summary="Classify a sample on the server (JSON, base64)",
)
async def predict_base64(
    project: ProjectRef, models: ModelsDep, body: Base64PredictRequest
) -> PredictionPublic:
    """Like the multipart predict, with the sample base64-encoded in JSON."""
    data = decode_base64(body.image)
    return prediction_to_public(*await _predict(models, project, data, body.version, body.top_k))


async def _predict(
    models: ModelService, project: str, data: bytes, version: int, top_k: int
) -> tuple[ModelVersion, list[Prediction], float]:
    """On the event loop when the model is warm and the call cheap (a hop to a worker thread
    and back costs more than a small model's invoke), else in the worker threads."""
    answer = models.predict_now(project, data, version, top_k)
    if answer is None:
        answer = await run_in_threadpool(models.predict, project, data, version, top_k)
    return answer
