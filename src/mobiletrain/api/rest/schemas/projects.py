"""REST shapes of projects and their input contract, and their conversions."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from mobiletrain.api.rest.task_schemas import (
    TASK_DESCRIPTION,
    AudioSpecModel,
    DetectionSpecModel,
    SensorSpecModel,
    task_spec_from_models,
)
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import (
    ColorMode,
    InputSpec,
    Normalization,
    Project,
    TaskType,
)


class InputSpecModel(BaseModel):
    """The model input contract: apps preprocess images exactly like this before inference.

    On input only `width`, `height`, `color_mode` and `normalization` are read; `channels`,
    `scale` and `offset` are derived by the server and always filled in responses.
    """

    model_config = ConfigDict(strict=True)

    width: int = Field(default=96, description="Input width in pixels, 8..1024.")
    height: int = Field(default=96, description="Input height in pixels, 8..1024.")
    color_mode: str = Field(
        default=ColorMode.RGB.value,
        description="Colour mode: `rgb` (3 channels) or `grayscale` (1 channel).",
        json_schema_extra={"enum": [c.value for c in ColorMode]},
    )
    normalization: str = Field(
        default=Normalization.ZERO_ONE.value,
        description=(
            "How 0..255 pixels become model input: `zero-one` (x/255), "
            "`minus-one-one` (x/127.5-1) or `raw` (x)."
        ),
        json_schema_extra={"enum": [n.value for n in Normalization]},
    )
    channels: int | None = Field(
        default=None, description="Output only: 3 for rgb, 1 for grayscale (ignored on input)."
    )
    scale: float | None = Field(
        default=None, description="Output only: model input = pixel * scale + offset."
    )
    offset: float | None = Field(
        default=None, description="Output only: model input = pixel * scale + offset."
    )
    audio: AudioSpecModel | None = Field(
        default=None, description="Audio settings (audio-classification projects only)."
    )
    sensor: SensorSpecModel | None = Field(
        default=None, description="Sensor settings (sensor-classification projects only)."
    )
    detection: DetectionSpecModel | None = Field(
        default=None, description="Detection settings (object-detection projects only)."
    )


class ProjectCreate(BaseModel):
    """Body of `POST /v1/projects`."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: str = Field(
        description="Unique project name, 1..128 characters, no '/' or '\\'; usable in URLs."
    )
    task: str = Field(
        default=TaskType.IMAGE_CLASSIFICATION.value,
        description=TASK_DESCRIPTION,
        json_schema_extra={"enum": [t.value for t in TaskType]},
    )
    labels: list[str] = Field(
        default_factory=list,
        description=(
            "Fixed label set. Empty = open label set: labels are added as samples arrive. "
            "With a fixed set, samples with another label are rejected (UNKNOWN_LABEL)."
        ),
    )
    input_spec: InputSpecModel | None = Field(
        default=None, description="Model input contract; omitted = 96x96 rgb zero-one."
    )


class ProjectPublic(BaseModel):
    """A project."""

    id: str = Field(description="Project id (UUID); usable wherever a project name is.")
    name: str = Field(description="Unique project name.")
    task: str = Field(description="Task type, e.g. `image-classification`.")
    labels: list[str] = Field(description="Known labels in order of first appearance.")
    labels_fixed: bool = Field(description="True when the label set was fixed at creation.")
    input_spec: InputSpecModel = Field(description="Model input contract, all fields filled.")
    created_at: datetime = Field(description="Creation time (UTC, ISO 8601).")
    promoted_version: int | None = Field(
        description="Model version pinned as current; null = the newest version is current."
    )


class ProjectListPublic(BaseModel):
    """A page of projects."""

    projects: list[ProjectPublic] = Field(description="Projects in creation order.")
    next_page_token: str = Field(description="Token of the next page; empty on the last page.")


def input_spec_to_model(spec: InputSpec) -> InputSpecModel:
    """Domain input spec → response shape (derived fields filled)."""
    return InputSpecModel(**spec.to_dict())


def input_spec_from_model(model: InputSpecModel | None) -> InputSpec | None:
    """Request shape → domain input spec; bad enum values raise INVALID_INPUT_SPEC."""
    if model is None:
        return None
    try:
        color_mode = ColorMode(model.color_mode)
    except ValueError:
        allowed = ", ".join(c.value for c in ColorMode)
        raise MobiletrainError(
            ErrorCode.INVALID_INPUT_SPEC,
            f"unknown color_mode {model.color_mode!r}; allowed: {allowed}",
        ) from None
    try:
        normalization = Normalization(model.normalization)
    except ValueError:
        allowed = ", ".join(n.value for n in Normalization)
        raise MobiletrainError(
            ErrorCode.INVALID_INPUT_SPEC,
            f"unknown normalization {model.normalization!r}; allowed: {allowed}",
        ) from None
    return InputSpec(
        width=model.width,
        height=model.height,
        color_mode=color_mode,
        normalization=normalization,
        task_spec=task_spec_from_models(model.audio, model.sensor, model.detection),
    )


def project_to_public(project: Project) -> ProjectPublic:
    """Domain project → response shape."""
    return ProjectPublic(
        id=project.id,
        name=project.name,
        task=project.task.value,
        labels=list(project.labels),
        labels_fixed=project.labels_fixed,
        input_spec=input_spec_to_model(project.input_spec),
        created_at=project.created_at,
        promoted_version=project.promoted_version,
    )
