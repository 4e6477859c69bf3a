"""The model manifest (the "model card") and a version's metrics, typed.

A manifest is what an app — or a person — holding only a model file needs to use it correctly:
labels in output order, the input contract, every file with its tensors, size and SHA-256, how
well it scored, why it was released. It is served as ``manifest.json`` (REST ``GET
.../manifest``, gRPC ``GetManifest`` / ``DownloadModel``), stored with the version and embedded
in every ``.tflite`` file (metadata entry ``mobiletrain_manifest``).

One schema (:data:`SCHEMA_VERSION`), one serialisation (:meth:`ModelManifest.to_dict`) written by
every builder (the trainer, the release step, federated publishing), one reader
(:meth:`ModelManifest.from_dict`) used by both wires. ``from_dict`` loads every manifest ever
stored (schema 1 included) and never fails on odd stored data; ``to_dict(from_dict(d)) == d`` for
every schema-2 manifest, so reading and re-writing changes nothing.

Open for task kinds: ``input`` is the task's own input spec (``InputSpec.to_dict()`` for
images), ``inputs`` / ``outputs`` describe the tensors an app feeds and gets in generic terms
(:class:`TensorSpec`: dtype, shape, layout, channel order, sample rate, clip or window length,
the role of each output such as ``boxes`` / ``classes`` / ``scores`` / ``count``), and
``task_spec`` is a block the task module owns (an audio front end's parameters, a sensor model's
per-channel normalisation, a detector's NMS settings). The three are written only when set, so an
image classifier's manifest keeps its layout.

The per-format file name comes from :attr:`ModelFormat.file_name` only
(:meth:`FormatInfo.for_format`, :meth:`FileInfo.for_format`); the download name from
:meth:`ModelFormat.download_name`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mobiletrain.core.evaluation import Evaluation
from mobiletrain.core.jsonvalues import integer, mapping, number, shape, strings, unmodelled
from mobiletrain.core.release import ReleaseDecision
from mobiletrain.core.types import ModelFormat, ModelVersion

SCHEMA_VERSION = 2
"""The manifest layout this server writes. 1: the layout before the release gate (no
``version``, ``created_at``, ``evaluation``, ``release``, ``dataset``); still read."""

EMBEDDED_SHA256_NOTE = (
    "This copy is embedded in a model file, which cannot hold its own SHA-256 (nor those of "
    "the other .tflite files, which embed this card too): 'files' lists only the files "
    "without an embedded card. The served manifest.json lists every file's SHA-256."
)

PROBABILITIES = "probabilities"
"""``output.kind`` of a classifier: one probability per label, in ``labels`` order."""


# -- files and their tensors -----------------------------------------------------------------


@dataclass(frozen=True)
class Quantization:
    """Affine quantisation of an integer tensor: ``real = (q - zero_point) * scale``."""

    scale: float
    zero_point: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"scale": self.scale, "zero_point": self.zero_point}

    @classmethod
    def from_dict(cls, data: Any) -> Quantization | None:
        """Inverse of :meth:`to_dict`; None for ``null`` or an unreadable value."""
        if not isinstance(data, Mapping):
            return None
        scale = number(data.get("scale"))
        if scale is None:
            return None
        return cls(scale=scale, zero_point=integer(data.get("zero_point")) or 0)


@dataclass
class TensorInfo:
    """One input or output tensor of one model file, as LiteRT reports it."""

    dtype: str
    shape: list[int | None]
    quantization: Quantization | None = None
    name: str | None = None  # None: the file has no tensor names (the .keras file)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``name`` only when known)."""
        out: dict[str, Any] = {} if self.name is None else {"name": self.name}
        out.update(
            dtype=self.dtype,
            shape=list(self.shape),
            quantization=self.quantization.to_dict() if self.quantization else None,
        )
        return out

    @classmethod
    def from_dict(cls, data: Any) -> TensorInfo | None:
        """Inverse of :meth:`to_dict`; None when ``data`` is not a tensor description."""
        if not isinstance(data, Mapping) or "dtype" not in data:
            return None
        name = data.get("name")
        return cls(
            dtype=str(data["dtype"]),
            shape=shape(data.get("shape")),
            quantization=Quantization.from_dict(data.get("quantization")),
            name=None if name is None else str(name),
        )


@dataclass
class FormatInfo:
    """``formats[<format>]``: one exported file and the tensors it takes and gives."""

    file: str
    input: TensorInfo | None = None
    output: TensorInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys a task adds per file

    @classmethod
    def for_format(
        cls,
        fmt: ModelFormat,
        input: TensorInfo | None = None,
        output: TensorInfo | None = None,
        **extra: Any,
    ) -> FormatInfo:
        """The entry of ``fmt``, named by the one file-name rule."""
        return cls(file=fmt.file_name, input=input, output=output, extra=dict(extra))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (tensors only when known)."""
        out: dict[str, Any] = {"file": self.file}
        if self.input is not None:
            out["input"] = self.input.to_dict()
        if self.output is not None:
            out["output"] = self.output.to_dict()
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> FormatInfo:
        """Inverse of :meth:`to_dict`."""
        data = mapping(data)
        return cls(
            file=str(data.get("file", "")),
            input=TensorInfo.from_dict(data.get("input")),
            output=TensorInfo.from_dict(data.get("output")),
            extra=unmodelled(data, ("file", "input", "output")),
        )


@dataclass
class FileInfo:
    """``files[<format>]``: a stored file's name, SHA-256 and size."""

    file: str
    sha256: str
    size: int

    @classmethod
    def for_format(cls, fmt: ModelFormat, sha256: str, size: int) -> FileInfo:
        """The entry of ``fmt``, named by the one file-name rule."""
        return cls(file=fmt.file_name, sha256=sha256, size=size)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"file": self.file, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, data: Any) -> FileInfo:
        """Inverse of :meth:`to_dict`."""
        data = mapping(data)
        return cls(
            file=str(data.get("file", "")),
            sha256=str(data.get("sha256", "")),
            size=integer(data.get("size")) or 0,
        )


# -- what an app feeds and gets, for any task kind --------------------------------------------


@dataclass
class TensorSpec:
    """One tensor an app feeds or gets, described for any task kind (``inputs`` / ``outputs``).

    ``layout`` names the axes (``NHWC`` an image batch, ``NT`` a batch of PCM clips, ``NTC`` a
    batch of sensor windows, ``NK4`` boxes); ``role`` says what the tensor means (``image``,
    ``waveform``, ``window``, ``probabilities``, ``boxes``, ``classes``, ``scores``,
    ``count``). ``channels`` is the channel order (``["ax", "ay", "az"]``), ``rate_hz`` the
    sampling rate and ``length`` the clip or window length in samples along the time axis.
    Only the fields that are set are written.
    """

    name: str
    dtype: str
    shape: list[int | None]
    layout: str = ""
    role: str = ""
    channels: list[str] = field(default_factory=list)
    rate_hz: float | None = None
    length: int | None = None
    value_range: tuple[float, float] | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        """Clip or window duration (``length / rate_hz``), when both are known."""
        if self.length is None or not self.rate_hz:
            return None
        return self.length / self.rate_hz

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the set fields only."""
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.layout:
            out["layout"] = self.layout
        if self.role:
            out["role"] = self.role
        if self.channels:
            out["channels"] = list(self.channels)
        if self.rate_hz is not None:
            out["rate_hz"] = self.rate_hz
        if self.length is not None:
            out["length"] = self.length
        if self.value_range is not None:
            out["value_range"] = list(self.value_range)
        if self.description:
            out["description"] = self.description
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> TensorSpec:
        """Inverse of :meth:`to_dict`."""
        data = mapping(data)
        bounds = data.get("value_range")
        value_range: tuple[float, float] | None = None
        if isinstance(bounds, list) and len(bounds) == 2:
            low, high = number(bounds[0]), number(bounds[1])
            if low is not None and high is not None:
                value_range = (low, high)
        known = (
            "name", "dtype", "shape", "layout", "role", "channels", "rate_hz", "length",
            "value_range", "description",
        )  # fmt: skip
        return cls(
            name=str(data.get("name", "")),
            dtype=str(data.get("dtype", "")),
            shape=shape(data.get("shape")),
            layout=str(data.get("layout", "")),
            role=str(data.get("role", "")),
            channels=strings(data.get("channels")),
            rate_hz=number(data.get("rate_hz")),
            length=integer(data.get("length")),
            value_range=value_range,
            description=str(data.get("description", "")),
            extra=unmodelled(data, known),
        )


@dataclass
class ModelOutput:
    """``output``: what the model answers, in one word, plus the number of classes."""

    kind: str = PROBABILITIES
    num_classes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. a detector's max_detections

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"kind": self.kind, "num_classes": self.num_classes, **self.extra}

    @classmethod
    def from_dict(cls, data: Any) -> ModelOutput:
        """Inverse of :meth:`to_dict`."""
        data = mapping(data)
        return cls(
            kind=str(data.get("kind", PROBABILITIES)),
            num_classes=integer(data.get("num_classes")) or 0,
            extra=unmodelled(data, ("kind", "num_classes")),
        )


# -- the trainer's measures in the card ------------------------------------------------------


@dataclass
class ValidationMetrics:
    """The card's ``metrics`` as the trainer measured them on the validation split."""

    validation_accuracy: dict[str, float] = field(default_factory=dict)  # keras + each file
    num_train: int | None = None
    num_validation: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. federated held_out_accuracy

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the set fields only)."""
        out: dict[str, Any] = {}
        if self.validation_accuracy:
            out["validation_accuracy"] = dict(self.validation_accuracy)
        if self.num_train is not None:
            out["num_train"] = self.num_train
        if self.num_validation is not None:
            out["num_validation"] = self.num_validation
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> ValidationMetrics:
        """Inverse of :meth:`to_dict`; the card's derived ``per_class`` and
        ``confusion_matrix`` are left out (they come from the evaluation)."""
        data = mapping(data)
        accuracies = {
            str(k): v
            for k, v in (
                (k, number(v)) for k, v in mapping(data.get("validation_accuracy")).items()
            )
            if v is not None
        }
        return cls(
            validation_accuracy=accuracies,
            num_train=integer(data.get("num_train")),
            num_validation=integer(data.get("num_validation")),
            extra=unmodelled(
                data,
                (
                    "validation_accuracy",
                    "num_train",
                    "num_validation",
                    "per_class",
                    "confusion_matrix",
                ),
            ),
        )


# -- the card --------------------------------------------------------------------------------


@dataclass
class DataSnapshot:
    """The samples a version was trained from."""

    num_samples: int
    class_counts: dict[str, int]
    snapshot_sha256: str
    split: dict[str, Any]  # {seed, validation_fraction, num_train, num_validation}

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "num_samples": self.num_samples,
            "class_counts": dict(self.class_counts),
            "snapshot_sha256": self.snapshot_sha256,
            "split": dict(self.split),
        }

    @classmethod
    def from_dict(cls, data: Any) -> DataSnapshot | None:
        """Inverse of :meth:`to_dict`; None for ``null``."""
        if not isinstance(data, Mapping):
            return None
        return cls(
            num_samples=integer(data.get("num_samples")) or 0,
            class_counts={
                str(k): integer(v) or 0 for k, v in mapping(data.get("class_counts")).items()
            },
            snapshot_sha256=str(data.get("snapshot_sha256", "")),
            split=mapping(data.get("split")),
        )


_CARD_KEYS = (
    "schema_version", "version", "project", "job_id", "created_at", "task", "labels", "input",
    "output", "formats", "files", "metrics", "evaluation", "release", "dataset", "warnings",
    "hyperparameters", "library_versions", "embedded_note", "inputs", "outputs", "task_spec",
)  # fmt: skip


@dataclass
class ModelManifest:
    """The model card of one version (see the module docstring).

    The trainer fills what it knows (labels, input, output, formats, validation, hyperparameters,
    library versions); the release step adds the version, project, job, files, evaluation,
    release decision and dataset; federated publishing adds its section to ``extra``. The
    embedded copy cannot list its own file's SHA-256 (writing it would change the file), see
    :meth:`embedded`. Keys of :meth:`to_dict` are the documented JSON layout (see
    ``proto/mobiletrain/v1/models.proto``, message ``Manifest``).
    """

    labels: list[str]
    input: dict[str, Any]  # the task's input spec, to_dict() form (images: InputSpec)
    output: ModelOutput = field(default_factory=ModelOutput)
    formats: dict[str, FormatInfo] = field(default_factory=dict)
    files: dict[str, FileInfo] = field(default_factory=dict)
    validation: ValidationMetrics = field(default_factory=ValidationMetrics)
    version: int = 0
    project_id: str = ""
    project_name: str = ""
    job_id: str = ""
    created_at: datetime | None = None
    evaluation: Evaluation | None = None
    release: ReleaseDecision | None = None
    dataset: DataSnapshot | None = None
    warnings: list[str] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    library_versions: dict[str, str] = field(default_factory=dict)
    task: str = "image-classification"
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    task_spec: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. "ondevice", "federated"
    embedded_note: str = ""
    schema_version: int = SCHEMA_VERSION  # what it was read as; to_dict always writes the current

    def to_dict(self) -> dict[str, Any]:
        """The one JSON serialisation (served, stored and embedded)."""
        score = self.evaluation.primary() if self.evaluation is not None else None
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "version": self.version,
            "project": {"id": self.project_id, "name": self.project_name},
            "job_id": self.job_id,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "task": self.task,
            "labels": list(self.labels),
            "input": dict(self.input),
            "output": self.output.to_dict(),
            "formats": {k: v.to_dict() for k, v in self.formats.items()},
            "files": {k: v.to_dict() for k, v in self.files.items()},
            "metrics": {
                **self.validation.to_dict(),
                # Per-class precision/recall/F1 and the confusion matrix of the primary format
                # on the evaluation set (rows = true label, in `labels` order).
                "per_class": [c.to_dict() for c in score.per_class] if score else [],
                "confusion_matrix": score.confusion_matrix if score else [],
            },
            "evaluation": self.evaluation.to_dict() if self.evaluation is not None else None,
            "release": self.release.to_dict() if self.release is not None else None,
            "dataset": self.dataset.to_dict() if self.dataset is not None else None,
            "warnings": list(self.warnings),
            "hyperparameters": dict(self.hyperparameters),
            "library_versions": dict(self.library_versions),
        }
        # Written only when set: an image classifier's card keeps the layout it always had.
        if self.inputs:
            out["inputs"] = [t.to_dict() for t in self.inputs]
        if self.outputs:
            out["outputs"] = [t.to_dict() for t in self.outputs]
        if self.task_spec:
            out["task_spec"] = dict(self.task_spec)
        out.update(self.extra)
        if self.embedded_note:
            out["embedded_note"] = self.embedded_note
        return out

    @classmethod
    def from_dict(cls, data: Any) -> ModelManifest:
        """Read a stored manifest of any schema version; never fails on odd values.

        Keys this type does not model stay in ``extra`` and are written back as they were.
        """
        data = mapping(data)
        project = mapping(data.get("project"))
        created = data.get("created_at")
        created_at: datetime | None = None
        if isinstance(created, str):
            try:
                created_at = datetime.fromisoformat(created)
            except ValueError:
                created_at = None
        evaluation: Evaluation | None = None
        if isinstance(data.get("evaluation"), Mapping):
            try:
                evaluation = Evaluation.from_dict(data["evaluation"])
            except (KeyError, TypeError, ValueError):
                evaluation = None
        release: ReleaseDecision | None = None
        if isinstance(data.get("release"), Mapping):
            try:
                release = ReleaseDecision.from_dict(data["release"])
            except Exception:  # an old or hand-edited decision must not make the card unreadable
                release = None
        return cls(
            labels=strings(data.get("labels")),
            input=mapping(data.get("input")),
            output=ModelOutput.from_dict(data.get("output")),
            formats={
                str(k): FormatInfo.from_dict(v) for k, v in mapping(data.get("formats")).items()
            },
            files={str(k): FileInfo.from_dict(v) for k, v in mapping(data.get("files")).items()},
            validation=ValidationMetrics.from_dict(data.get("metrics")),
            version=integer(data.get("version")) or 0,
            project_id=str(project.get("id", "")),
            project_name=str(project.get("name", "")),
            job_id=str(data.get("job_id", "")),
            created_at=created_at,
            evaluation=evaluation,
            release=release,
            dataset=DataSnapshot.from_dict(data.get("dataset")),
            warnings=strings(data.get("warnings")),
            hyperparameters=mapping(data.get("hyperparameters")),
            library_versions={
                str(k): str(v) for k, v in mapping(data.get("library_versions")).items()
            },
            task=str(data.get("task") or "image-classification"),
            inputs=[
                TensorSpec.from_dict(t) for t in data.get("inputs") or [] if isinstance(t, Mapping)
            ],
            outputs=[
                TensorSpec.from_dict(t) for t in data.get("outputs") or [] if isinstance(t, Mapping)
            ],
            task_spec=mapping(data.get("task_spec")),
            extra=unmodelled(data, _CARD_KEYS),
            embedded_note=str(data.get("embedded_note", "")),
            schema_version=integer(data.get("schema_version")) or 1,
        )

    def embedded(self, fmt: str, embedding: Sequence[str]) -> dict[str, Any]:
        """The copy written into the ``fmt`` file; ``embedding`` names every format whose file
        carries a copy (their SHA-256s depend on the copy, so none is listed)."""
        copy = self.to_dict()
        copy["files"] = {k: v.to_dict() for k, v in self.files.items() if k not in embedding}
        copy["embedded_in"] = fmt
        copy["embedded_note"] = EMBEDDED_SHA256_NOTE
        return copy

    def labels_or(self, fallback: Sequence[str]) -> list[str]:
        """The labels in output order, or ``fallback`` (the project's) when none are listed."""
        return list(self.labels) if self.labels else list(fallback)


def manifest_of(model: ModelVersion) -> ModelManifest:
    """The typed manifest of a stored version."""
    return ModelManifest.from_dict(model.manifest)


__all__ = [
    "EMBEDDED_SHA256_NOTE",
    "PROBABILITIES",
    "SCHEMA_VERSION",
    "DataSnapshot",
    "FileInfo",
    "FormatInfo",
    "ModelManifest",
    "ModelOutput",
    "Quantization",
    "TensorInfo",
    "TensorSpec",
    "ValidationMetrics",
    "manifest_of",
]
