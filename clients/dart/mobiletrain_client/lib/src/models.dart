// The fields, enum values and constructors of these plain data types mirror the wire
// messages documented in proto/mobiletrain/v1 and docs/rest.md; repeating that for about
// 130 members would add noise, so the rule is scoped off here (and only here).
// ignore_for_file: public_member_api_docs

/// Plain Dart types shared by both transports (gRPC and REST).
///
/// The gRPC transport converts generated protobuf messages into these types and
/// the REST transport parses JSON into them, so app code never depends on which
/// wire is in use.
library;

import 'task_specs.dart';

/// Lifecycle of a training job, mirroring `mobiletrain.v1.JobState`.
enum JobState {
  unspecified,
  queued,
  running,
  succeeded,
  failed,
  cancelled;

  /// True once the job can no longer change state.
  bool get isTerminal =>
      this == succeeded || this == failed || this == cancelled;

  /// The REST name (`queued`, `running`, ...); empty for [unspecified].
  String get wireName => this == unspecified ? '' : name;

  /// The state whose REST name is [name]; [unspecified] if unknown.
  static JobState fromWireName(String name) =>
      values.firstWhere((s) => s != unspecified && s.name == name, orElse: () => unspecified);
}

/// Colour mode of the model input, mirroring `mobiletrain.v1.ColorMode`.
enum ColorMode {
  unspecified,
  rgb,
  grayscale;

  /// The REST and manifest name (`rgb`, `grayscale`); empty for [unspecified].
  String get wireName => this == unspecified ? '' : name;

  /// The mode whose REST name is [name]; [unspecified] if unknown.
  static ColorMode fromWireName(String name) =>
      values.firstWhere((m) => m != unspecified && m.name == name, orElse: () => unspecified);
}

/// How pixel values are scaled before inference, mirroring `mobiletrain.v1.Normalization`.
enum Normalization {
  unspecified,
  zeroOne,
  minusOneOne,
  raw;

  /// The REST and manifest name (`zero-one`, `minus-one-one`, `raw`).
  String get wireName => switch (this) {
        unspecified => '',
        zeroOne => 'zero-one',
        minusOneOne => 'minus-one-one',
        raw => 'raw',
      };

  /// `input = pixel * scale + offset` for this normalisation.
  ({double scale, double offset}) get scaleAndOffset => switch (this) {
        zeroOne || unspecified => (scale: 1 / 255, offset: 0.0),
        minusOneOne => (scale: 1 / 127.5, offset: -1.0),
        raw => (scale: 1.0, offset: 0.0),
      };

  /// The normalisation whose REST name is [name]; [unspecified] if unknown.
  static Normalization fromWireName(String name) => values
      .firstWhere((n) => n != unspecified && n.wireName == name, orElse: () => unspecified);
}

/// Model file formats, mirroring `mobiletrain.v1.ModelFormat`.
///
/// [wireName] is the string the REST API uses (`float32`, `int8`, ...).
enum ModelFormat {
  unspecified(''),
  keras('keras'),
  float32('float32'),
  float16('float16'),
  dynamicInt8('dynamic-int8'),
  int8('int8'),
  featureExtractor('feature-extractor'),
  trainStep('train-step'),
  headInference('head-inference'),
  headSignatures('head-signatures'),
  headWeights('head-weights');

  const ModelFormat(this.wireName);

  /// Name of the format on the REST API and in the manifest.
  final String wireName;

  /// The format whose REST name is [name]; throws [ArgumentError] if unknown.
  static ModelFormat fromWireName(String name) => ModelFormat.values.firstWhere(
        (f) => f.wireName == name && f != unspecified,
        orElse: () => throw ArgumentError.value(name, 'name', 'unknown model format'),
      );

  /// The format whose REST name is [name], or null when this client does not
  /// know it (a newer server): callers turn that into a `bad_response` error
  /// or skip the entry, never an [ArgumentError] past the retry logic.
  static ModelFormat? tryFromWireName(String name) {
    for (final f in ModelFormat.values) {
      if (f != unspecified && f.wireName == name) return f;
    }
    return null;
  }
}

/// Kind of a job event, mirroring `mobiletrain.v1.EventKind`.
enum EventKind {
  unspecified,
  state,
  progress,
  epoch,
  evaluation,
  log;

  /// The REST and SSE `event:` name (`state`, `progress`, ...).
  String get wireName => this == unspecified ? '' : name;

  /// The kind whose REST name is [name]; [unspecified] if unknown.
  static EventKind fromWireName(String name) =>
      values.firstWhere((k) => k != unspecified && k.name == name, orElse: () => unspecified);
}

/// What a model expects as input.
class InputSpec {
  const InputSpec({
    required this.width,
    required this.height,
    required this.colorMode,
    required this.normalization,
    required this.channels,
    required this.scale,
    required this.offset,
    this.audio,
    this.sensor,
  });

  /// Parses the REST / manifest shape `{width, height, color_mode, normalization,
  /// channels?, scale?, offset?}`; missing derived fields are computed.
  factory InputSpec.fromJson(Map<String, Object?> json) {
    final colorMode = ColorMode.fromWireName(_str(json['color_mode']));
    final normalization = Normalization.fromWireName(_str(json['normalization']));
    final derived = normalization.scaleAndOffset;
    return InputSpec(
      width: _int(json['width']),
      height: _int(json['height']),
      colorMode: colorMode,
      normalization: normalization,
      channels: _int(json['channels'], colorMode == ColorMode.grayscale ? 1 : 3),
      scale: _double(json['scale'], derived.scale),
      offset: _double(json['offset'], derived.offset),
      audio: json['audio'] is Map<String, Object?> ? AudioSpec.fromJson(json['audio']! as Map<String, Object?>) : null,
      sensor:
          json['sensor'] is Map<String, Object?> ? SensorSpec.fromJson(json['sensor']! as Map<String, Object?>) : null,
    );
  }

  final int width;
  final int height;
  final ColorMode colorMode;
  final Normalization normalization;
  final int channels;

  /// `input = pixel * scale + offset`, the normalisation as two numbers.
  final double scale;
  final double offset;

  /// The audio contract of an `audio-classification` project, else null.
  final AudioSpec? audio;

  /// The sensor contract of a `sensor-classification` project, else null.
  final SensorSpec? sensor;
}

/// A project: one model's labels and input contract.
class Project {
  const Project({
    required this.id,
    required this.name,
    required this.labels,
    required this.labelsFixed,
    required this.inputSpec,
    required this.promotedVersion,
  });

  /// Parses the REST `ProjectPublic` shape.
  factory Project.fromJson(Map<String, Object?> json) => Project(
        id: _str(json['id']),
        name: _str(json['name']),
        labels: _strings(json['labels']),
        labelsFixed: json['labels_fixed'] == true,
        inputSpec: InputSpec.fromJson(_map(json['input_spec'])),
        promotedVersion: _int(json['promoted_version']),
      );

  final String id;
  final String name;
  final List<String> labels;
  final bool labelsFixed;
  final InputSpec inputSpec;

  /// The version devices receive from an update check; 0 when none is promoted.
  final int promotedVersion;
}

/// Outcome of one uploaded sample.
enum SampleStatus {
  unspecified,
  accepted,
  duplicate,
  rejected;

  /// The REST name (`accepted`, `duplicate`, `rejected`).
  String get wireName => this == unspecified ? '' : name;

  /// True when the server holds the sample (now or from an earlier upload).
  bool get isStored => this == accepted || this == duplicate;

  /// The status whose REST name is [name]; [unspecified] if unknown.
  static SampleStatus fromWireName(String name) =>
      values.firstWhere((s) => s != unspecified && s.name == name, orElse: () => unspecified);
}

/// The server's answer for one sample of an upload.
class SampleResult {
  const SampleResult({
    required this.clientId,
    required this.status,
    this.sampleId = '',
    this.errorCode = 0,
    this.errorName = '',
    this.message = '',
  });

  /// Parses one REST `SampleResultPublic`.
  factory SampleResult.fromJson(Map<String, Object?> json) => SampleResult(
        clientId: _str(json['client_id']),
        status: SampleStatus.fromWireName(_str(json['status'])),
        sampleId: _str(json['sample_id']),
        errorCode: _int(json['error_code']),
        errorName: _str(json['error']),
        message: _str(json['reason']),
      );

  /// The idempotent id the client gave the sample.
  final String clientId;
  final SampleStatus status;

  /// Server-side id; empty when rejected.
  final String sampleId;

  /// Stable numeric error code (`mobiletrain.v1.ErrorCode`) when rejected, else 0.
  final int errorCode;
  final String errorName;
  final String message;
}

/// One sample to upload: encoded image bytes (JPEG/PNG/WebP...) with a label.
class SampleUpload {
  const SampleUpload({
    required this.clientId,
    required this.label,
    required this.bytes,
    this.mediaType = '',
  });

  /// Idempotent id chosen by the client: re-sending the same id never doubles a sample.
  final String clientId;
  final String label;
  final List<int> bytes;
  final String mediaType;
}

/// Hyperparameters of a training job; null fields take the server's defaults.
class TrainingOptions {
  const TrainingOptions({
    this.epochs,
    this.batchSize,
    this.learningRate,
    this.validationSplit,
    this.seed,
    this.architecture,
    this.augmentFlip,
    this.earlyStoppingPatience,
    this.formats = const [],
  });

  final int? epochs;
  final int? batchSize;
  final double? learningRate;
  final double? validationSplit;
  final int? seed;

  /// `small-cnn`, `mobilenet-v3-small` or `mobilenet-v2` (REST names).
  final String? architecture;
  final bool? augmentFlip;
  final int? earlyStoppingPatience;
  final List<ModelFormat> formats;

  /// The REST body of `POST /v1/projects/{project}/jobs`: only the fields that are set.
  Map<String, Object?> toJson() => {
        'epochs': ?epochs,
        'batch_size': ?batchSize,
        'learning_rate': ?learningRate,
        'validation_split': ?validationSplit,
        'seed': ?seed,
        'architecture': ?architecture,
        'augment_flip': ?augmentFlip,
        'early_stopping_patience': ?earlyStoppingPatience,
        if (formats.isNotEmpty) 'formats': [for (final f in formats) f.wireName],
      };
}

/// A training job.
class Job {
  const Job({
    required this.id,
    required this.projectId,
    required this.state,
    this.attempts = 0,
    this.error = '',
    this.cancelRequested = false,
    this.modelVersion = 0,
    this.createdAt,
    this.finishedAt,
  });

  /// Parses the REST `JobPublic` shape.
  factory Job.fromJson(Map<String, Object?> json) => Job(
        id: _str(json['id']),
        projectId: _str(json['project_id']),
        state: JobState.fromWireName(_str(json['state'])),
        attempts: _int(json['attempts']),
        error: _str(json['error']),
        cancelRequested: json['cancel_requested'] == true,
        modelVersion: _int(json['model_version']),
        createdAt: _time(json['created_at']),
        finishedAt: _time(json['finished_at']),
      );

  final String id;
  final String projectId;
  final JobState state;
  final int attempts;
  final String error;
  final bool cancelRequested;

  /// Version published by this job; 0 until it succeeds.
  final int modelVersion;
  final DateTime? createdAt;
  final DateTime? finishedAt;
}

/// One event of a job's progress stream. Exactly one payload field is set.
class JobEvent {
  const JobEvent({
    required this.jobId,
    required this.seq,
    required this.kind,
    this.createdAt,
    this.state,
    this.error = '',
    this.progress,
    this.epoch,
    this.evaluation,
    this.log,
  });

  /// Parses the REST `JobEventPublic` shape (also the `data:` of an SSE message).
  ///
  /// `data` holds the payload of [kind]: `state` {state, error?, model_version?},
  /// `progress`, `epoch`, `evaluation` (the metrics) or `log` {message}.
  factory JobEvent.fromJson(Map<String, Object?> json) {
    final kind = EventKind.fromWireName(_str(json['kind']));
    final data = _map(json['data']);
    return JobEvent(
      jobId: _str(json['job_id']),
      seq: _int(json['seq']),
      kind: kind,
      createdAt: _time(json['created_at']),
      state: kind == EventKind.state ? JobState.fromWireName(_str(data['state'])) : null,
      error: kind == EventKind.state ? _str(data['error']) : '',
      progress: kind == EventKind.progress ? ProgressInfo.fromJson(data) : null,
      epoch: kind == EventKind.epoch ? EpochInfo.fromJson(data) : null,
      evaluation: kind == EventKind.evaluation ? EvaluationInfo.fromJson(data) : null,
      log: kind == EventKind.log ? _str(data['message']) : null,
    );
  }

  final String jobId;

  /// Strictly increasing per job; reconnect with the last one seen to miss nothing.
  final int seq;
  final EventKind kind;
  final DateTime? createdAt;

  /// Set for [EventKind.state].
  final JobState? state;

  /// Reason of a failure, for [EventKind.state] events.
  final String error;
  final ProgressInfo? progress;
  final EpochInfo? epoch;
  final EvaluationInfo? evaluation;
  final String? log;

  /// True for the event after which the stream ends.
  bool get isTerminal => kind == EventKind.state && (state?.isTerminal ?? false);
}

/// Batch progress inside an epoch.
class ProgressInfo {
  const ProgressInfo({
    required this.epoch,
    required this.epochs,
    required this.batch,
    required this.batches,
    required this.samplesPerSecond,
    required this.etaSeconds,
    this.phase = 'training',
  });

  /// Parses a `progress` event's data.
  factory ProgressInfo.fromJson(Map<String, Object?> json) => ProgressInfo(
        epoch: _int(json['epoch']),
        epochs: _int(json['epochs']),
        batch: _int(json['batch']),
        batches: _int(json['batches']),
        samplesPerSecond: _double(json['samples_per_second']),
        etaSeconds: _double(json['eta_seconds']),
        phase: json['phase'] is String ? json['phase']! as String : 'training',
      );

  final int epoch;
  final int epochs;
  final int batch;
  final int batches;
  final double samplesPerSecond;
  final double etaSeconds;

  /// `training`, or `preparing data` while the worker reads the samples: then
  /// [epoch] is 0 and [batch] / [batches] count samples read out of all.
  final String phase;
}

/// Metrics at the end of an epoch.
class EpochInfo {
  const EpochInfo({
    required this.epoch,
    required this.epochs,
    required this.loss,
    required this.accuracy,
    required this.valLoss,
    required this.valAccuracy,
    required this.seconds,
  });

  /// Parses an `epoch` event's data; missing metrics (no validation split) are 0.
  factory EpochInfo.fromJson(Map<String, Object?> json) => EpochInfo(
        epoch: _int(json['epoch']),
        epochs: _int(json['epochs']),
        loss: _double(json['loss']),
        accuracy: _double(json['accuracy']),
        valLoss: _double(json['val_loss']),
        valAccuracy: _double(json['val_accuracy']),
        seconds: _double(json['seconds']),
      );

  final int epoch;
  final int epochs;
  final double loss;
  final double accuracy;
  final double valLoss;
  final double valAccuracy;
  final double seconds;
}

/// Final evaluation on the validation split.
class EvaluationInfo {
  const EvaluationInfo({
    required this.accuracy,
    required this.labels,
    required this.confusionMatrix,
    required this.tfliteAccuracy,
  });

  /// Parses an `evaluation` event's data (the version's metrics).
  factory EvaluationInfo.fromJson(Map<String, Object?> json) => EvaluationInfo(
        accuracy: _double(json['accuracy']),
        labels: _strings(json['labels']),
        confusionMatrix: [
          for (final row in _list(json['confusion_matrix']))
            [for (final count in _list(row)) _int(count)],
        ],
        tfliteAccuracy: _formatAccuracies(json['tflite_accuracy'] ?? json['tflite']),
      );

  final double accuracy;
  final List<String> labels;
  final List<List<int>> confusionMatrix;

  /// Accuracy measured in the LiteRT interpreter, per exported format.
  final Map<ModelFormat, double> tfliteAccuracy;
}

/// One downloadable file of a model version.
class Artifact {
  const Artifact({required this.format, required this.size, required this.sha256});

  /// Parses `{format, size, sha256}`; [format] may be given when the JSON is keyed by it.
  factory Artifact.fromJson(Map<String, Object?> json, {ModelFormat? format}) => Artifact(
        format: format ?? _format(_str(json['format'])),
        size: _int(json['size']),
        sha256: _str(json['sha256']),
      );

  final ModelFormat format;
  final int size;

  /// Hex sha256 of the file; the model manager checks every download against it.
  final String sha256;
}

/// A published model version.
class ModelVersion {
  const ModelVersion({
    required this.projectId,
    required this.version,
    required this.jobId,
    required this.current,
    required this.accuracy,
    required this.artifacts,
    this.createdAt,
  });

  /// Parses the REST `ModelVersionPublic` shape.
  factory ModelVersion.fromJson(Map<String, Object?> json) => ModelVersion(
        projectId: _str(json['project_id']),
        version: _int(json['version']),
        jobId: _str(json['job_id']),
        current: json['current'] == true,
        accuracy: _double(_map(json['metrics'])['accuracy']),
        artifacts: [
          for (final a in _list(json['artifacts']))
            if (a is Map<String, Object?> && _knownFormat(a['format'])) Artifact.fromJson(a),
        ],
        createdAt: _time(json['created_at']),
      );

  final String projectId;
  final int version;
  final String jobId;

  /// True for the promoted version that update checks return.
  final bool current;
  final double accuracy;
  final List<Artifact> artifacts;
  final DateTime? createdAt;
}

/// The model contract: labels, input spec and files, plus the full manifest JSON.
class Manifest {
  const Manifest({
    required this.projectId,
    required this.version,
    required this.labels,
    required this.inputSpec,
    required this.artifacts,
    required this.json,
  });

  /// Parses a `manifest.json` document (REST `GET .../manifest`, or gRPC `manifest_json`).
  ///
  /// The file list is the manifest's `files` section (`{format: {file, sha256,
  /// size}}`); [projectId] and [version] fill in what an older manifest lacks.
  factory Manifest.fromJson(Map<String, Object?> json, {String? projectId, int? version}) {
    final artifacts = switch (json['files']) {
      final Map<String, Object?> byFormat => [
          for (final MapEntry(:key, :value) in byFormat.entries)
            if (value is Map<String, Object?> && _knownFormat(key))
              Artifact.fromJson(value, format: ModelFormat.fromWireName(key)),
        ],
      final List<Object?> list => [
          for (final a in list)
            if (a is Map<String, Object?> && _knownFormat(a['format'])) Artifact.fromJson(a),
        ],
      _ => const <Artifact>[],
    };
    return Manifest(
      projectId: _str(_map(json['project'])['id'], _str(json['project_id'], projectId ?? '')),
      version: _int(json['version'], version ?? 0),
      labels: _strings(json['labels']),
      inputSpec: InputSpec.fromJson(_map(json['input'] ?? json['input_spec'])),
      artifacts: artifacts,
      json: json,
    );
  }

  final String projectId;
  final int version;
  final List<String> labels;
  final InputSpec inputSpec;
  final List<Artifact> artifacts;

  /// The manifest document as the server wrote it (also embedded in the .tflite).
  final Map<String, Object?> json;
}

/// Answer to "is there a newer model than the one I have?".
class UpdateCheck {
  const UpdateCheck({required this.notModified, this.latest, this.artifact});

  /// Parses the REST `UpdateCheckPublic` shape
  /// `{not_modified, version, format, sha256, size, download_url, model}`.
  factory UpdateCheck.fromJson(Map<String, Object?> json) => UpdateCheck(
        notModified: json['not_modified'] == true,
        latest: json['model'] is Map<String, Object?>
            ? ModelVersion.fromJson(_map(json['model']))
            : null,
        artifact: _knownFormat(json['format']) ? Artifact.fromJson(json) : null,
      );

  /// True when the device already has the current file.
  final bool notModified;
  final ModelVersion? latest;

  /// The file of the requested format in [latest].
  final Artifact? artifact;
}

/// First part of a download: what the file is.
class ModelFileInfo {
  const ModelFileInfo({
    required this.version,
    required this.format,
    required this.size,
    required this.sha256,
    required this.fileName,
  });

  final int version;
  final ModelFormat format;
  final int size;
  final String sha256;
  final String fileName;
}

/// A piece of a model file starting at [offset].
class ModelBytes {
  const ModelBytes({required this.info, required this.offset, required this.data});

  final ModelFileInfo info;
  final int offset;
  final List<int> data;
}

/// A server prediction (for comparing with on-device inference).
class Prediction {
  const Prediction({required this.label, required this.index, required this.score});

  /// Parses `{label, index, score}`.
  factory Prediction.fromJson(Map<String, Object?> json) => Prediction(
        label: _str(json['label']),
        index: _int(json['index']),
        score: _double(json['score']),
      );

  final String label;
  final int index;
  final double score;
}

// --- lenient JSON readers: a missing or mistyped field takes the fallback --------------------

int _int(Object? value, [int fallback = 0]) => switch (value) {
      final int i => i,
      final double d when d.isFinite => d.toInt(),
      _ => fallback,
    };

double _double(Object? value, [double fallback = 0]) => switch (value) {
      final num n => n.toDouble(),
      _ => fallback,
    };

String _str(Object? value, [String fallback = '']) => value is String ? value : fallback;

DateTime? _time(Object? value) => value is String ? DateTime.tryParse(value) : null;

List<Object?> _list(Object? value) => value is List<Object?> ? value : const [];

Map<String, Object?> _map(Object? value) =>
    value is Map<String, Object?> ? value : const <String, Object?>{};

List<String> _strings(Object? value) => [
      for (final item in _list(value))
        if (item is String) item,
    ];

bool _knownFormat(Object? name) =>
    name is String && ModelFormat.values.any((f) => f != ModelFormat.unspecified && f.wireName == name);

ModelFormat _format(String name) =>
    _knownFormat(name) ? ModelFormat.fromWireName(name) : ModelFormat.unspecified;

/// `{"float16": 0.93}`, `{"float16": {"accuracy": 0.93}}` or `[{"format", "accuracy"}]`.
Map<ModelFormat, double> _formatAccuracies(Object? value) {
  final List<(Object?, Object?)> pairs = switch (value) {
    final Map<String, Object?> map => [for (final e in map.entries) (e.key, e.value)],
    final List<Object?> list => [
        for (final item in list)
          if (item is Map<String, Object?>) (item['format'], item),
      ],
    _ => const <(Object?, Object?)>[],
  };
  return {
    for (final (name, entry) in pairs)
      if (name is String && _knownFormat(name))
        ModelFormat.fromWireName(name):
            entry is Map<String, Object?> ? _double(entry['accuracy']) : _double(entry),
  };
}
