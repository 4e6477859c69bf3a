/// The native gRPC wire, over the stubs `scripts/gen_dart.sh` generates from
/// `proto/mobiletrain/v1/*.proto` into `lib/src/generated/`.
///
/// Generated names follow protoc_plugin: service `FooService` → `FooServiceClient`,
/// rpc `WatchJob` → `watchJob`, fields in lowerCamelCase, 64-bit integers as
/// `Int64`, enum values as `JobState.JOB_STATE_RUNNING`. They are imported with
/// the prefix `pb` because the plain domain types of `models.dart` share names.
library;

import 'dart:async';
import 'dart:convert';

import 'package:crypto/crypto.dart' as crypto;
import 'package:fixnum/fixnum.dart';
import 'package:grpc/grpc.dart';

import '../errors.dart';
import '../generated/mobiletrain/v1/common.pb.dart' as pb;
import '../generated/mobiletrain/v1/datasets.pbgrpc.dart' as pb;
import '../generated/mobiletrain/v1/models.pbgrpc.dart' as pb;
import '../generated/mobiletrain/v1/projects.pbgrpc.dart' as pb;
import '../generated/mobiletrain/v1/training.pbgrpc.dart' as pb;
import '../models.dart';
import '../settings.dart';
import '../task_specs.dart';
import '../transport.dart';

/// Trailing metadata key that carries the server's `ErrorCode` number.
const String errorCodeMetadataKey = 'mobiletrain-error-code';

/// [MobiletrainTransport] over gRPC (HTTP/2), for Android, iOS and desktop.
///
/// Uploads use one client stream per call: small samples are packed into
/// `inline_batch` messages that stay under the server's message size limit,
/// larger ones are sent as `header` + `chunk` messages and resume from the
/// server's offset after a broken stream.
class GrpcTransport implements MobiletrainTransport {
  /// Opens a channel to `settings.host:settings.grpcPort` (lazily: the first call connects).
  factory GrpcTransport(ConnectionSettings settings) {
    final channel = ClientChannel(
      settings.host,
      port: settings.grpcPort,
      options: ChannelOptions(
        credentials: settings.useTls
            // A certificate the system does not trust is accepted only when it
            // is the pinned one (serve --lan's self-signed certificate).
            ? ChannelCredentials.secure(
                onBadCertificate: (certificate, host) =>
                    settings.trustsCertificate(certificate.der),
              )
            : const ChannelCredentials.insecure(),
        connectTimeout: settings.connectTimeout,
        // A phone that changes network leaves a dead connection behind: ping
        // every 30 s while calls run (the server allows one every 10 s) and
        // drop the connection when no answer comes within 10 s.
        keepAlive: const ClientKeepAliveOptions(
          pingInterval: Duration(seconds: 30),
          timeout: Duration(seconds: 10),
        ),
      ),
    );
    return GrpcTransport.withChannel(settings, channel);
  }

  /// Uses an existing [channel] (for tests, or a custom transport connector).
  GrpcTransport.withChannel(this.settings, this.channel)
      : _projects = pb.ProjectServiceClient(channel, options: _auth(settings)),
        _datasets = pb.DatasetServiceClient(channel, options: _auth(settings)),
        _training = pb.TrainingServiceClient(channel, options: _auth(settings)),
        _models = pb.ModelServiceClient(channel, options: _auth(settings));

  /// Where the server is.
  final ConnectionSettings settings;

  /// The HTTP/2 channel all stubs share.
  final ClientChannel channel;

  final pb.ProjectServiceClient _projects;
  final pb.DatasetServiceClient _datasets;
  final pb.TrainingServiceClient _training;
  final pb.ModelServiceClient _models;

  /// Samples up to this size travel inline; larger ones in chunks (server rule: 1 MiB).
  static const int inlineLimit = 1024 * 1024;

  /// Size of one chunk of a large sample.
  static const int chunkSize = 256 * 1024;

  static CallOptions _auth(ConnectionSettings settings) => CallOptions(metadata: {
        if (settings.token.isNotEmpty) 'authorization': 'Bearer ${settings.token}',
      });

  CallOptions get _unary => CallOptions(timeout: settings.callTimeout);

  /// Inline bytes per request message: well under the server's message size limit.
  int get _batchBytes => settings.maxMessageBytes * 3 ~/ 4;

  // --- projects ---------------------------------------------------------------------------

  @override
  Future<Project> getProject(String project) => _call(() async {
        final reply =
            await _projects.getProject(pb.GetProjectRequest(project: project), options: _unary);
        return _project(reply);
      });

  // --- samples ----------------------------------------------------------------------------

  @override
  Future<List<SampleResult>> uploadSamples(String project, List<SampleUpload> samples) =>
      _call(() async {
        if (samples.isEmpty) return const <SampleResult>[];
        // Ask first where earlier, broken streams left the large samples (resume), so
        // that no call is made from inside the request stream.
        final held = <String, pb.UploadOffset>{};
        for (final sample in samples) {
          if (sample.bytes.length <= inlineLimit) continue;
          held[sample.clientId] = await _datasets.getUploadOffset(
            pb.GetUploadOffsetRequest(project: project, clientId: sample.clientId),
            options: _unary,
          );
        }
        // No deadline: a slow uplink may need minutes for the whole stream.
        final reply = await _datasets.uploadSamples(_uploadRequests(project, samples, held));
        final results = [for (final r in reply.results) _sampleResult(r)];
        if (results.length != samples.length) {
          throw MobiletrainException.of(ErrorCodes.badResponse,
              'upload answered ${results.length} results for ${samples.length} samples');
        }
        return results;
      });

  Stream<pb.UploadSamplesRequest> _uploadRequests(
    String project,
    List<SampleUpload> samples,
    Map<String, pb.UploadOffset> held,
  ) async* {
    var first = true;
    var batch = <pb.InlineSample>[];
    var batchBytes = 0;

    // The first message names the project; later ones may leave it empty.
    pb.UploadSamplesRequest message({
      pb.InlineSampleBatch? inlineBatch,
      pb.SampleHeader? header,
      pb.SampleChunk? chunk,
    }) {
      final request = pb.UploadSamplesRequest(
        project: first ? project : null,
        inlineBatch: inlineBatch,
        header: header,
        chunk: chunk,
      );
      first = false;
      return request;
    }

    pb.UploadSamplesRequest flush() {
      final request = message(inlineBatch: pb.InlineSampleBatch(samples: batch));
      batch = <pb.InlineSample>[];
      batchBytes = 0;
      return request;
    }

    for (final sample in samples) {
      if (sample.bytes.length <= inlineLimit) {
        if (batch.isNotEmpty && batchBytes + sample.bytes.length > _batchBytes) yield flush();
        batch.add(pb.InlineSample(
          clientId: sample.clientId,
          label: sample.label,
          data: sample.bytes,
          mediaType: sample.mediaType,
        ));
        batchBytes += sample.bytes.length;
        continue;
      }
      if (batch.isNotEmpty) yield flush();
      final size = sample.bytes.length;
      final offset = held[sample.clientId];
      yield message(
        header: pb.SampleHeader(
          clientId: sample.clientId,
          label: sample.label,
          size: Int64(size),
          sha256: crypto.sha256.convert(sample.bytes).toString(),
          mediaType: sample.mediaType,
        ),
      );
      if (offset != null && offset.stored) continue; // answered DUPLICATE, no chunks expected
      final start = offset != null && offset.size.toInt() == size ? offset.offset.toInt() : 0;
      for (var at = start; at < size; at += chunkSize) {
        final end = at + chunkSize < size ? at + chunkSize : size;
        yield message(
          chunk: pb.SampleChunk(
            clientId: sample.clientId,
            offset: Int64(at),
            data: sample.bytes.sublist(at, end),
          ),
        );
      }
    }
    if (batch.isNotEmpty) yield flush();
  }

  // --- jobs -------------------------------------------------------------------------------

  @override
  Future<Job> startJob(String project, TrainingOptions options) => _call(() async {
        final reply = await _training.startJob(
          pb.StartJobRequest(project: project, hyperparameters: _hyperparameters(options)),
          options: _unary,
        );
        return _job(reply);
      });

  @override
  Future<Job> getJob(String jobId) => _call(() async {
        final reply = await _training.getJob(pb.GetJobRequest(jobId: jobId), options: _unary);
        return _job(reply);
      });

  @override
  Future<Job> cancelJob(String jobId) => _call(() async {
        final reply =
            await _training.cancelJob(pb.CancelJobRequest(jobId: jobId), options: _unary);
        return _job(reply);
      });

  @override
  Stream<JobEvent> watchJob(String jobId, {int afterSeq = 0}) async* {
    final stream = _training.watchJob(
      pb.WatchJobRequest(jobId: jobId, afterSeq: Int64(afterSeq)),
    );
    try {
      await for (final message in stream) {
        final event = _event(message);
        yield event;
        if (event.isTerminal) return;
      }
    } on Object catch (error) {
      throw _mapError(error);
    }
  }

  // --- models -----------------------------------------------------------------------------

  @override
  Future<List<ModelVersion>> listModelVersions(String project) => _call(() async {
        final versions = <ModelVersion>[];
        var token = '';
        do {
          final page = await _models.listModelVersions(
            pb.ListModelVersionsRequest(project: project, pageToken: token),
            options: _unary,
          );
          versions.addAll(page.versions.map(_modelVersion));
          token = page.nextPageToken;
        } while (token.isNotEmpty);
        return versions;
      });

  @override
  Future<Manifest> getManifest(String project, {int version = 0}) => _call(() async {
        final reply = await _models.getManifest(
          pb.GetManifestRequest(project: project, version: version),
          options: _unary,
        );
        return Manifest(
          projectId: reply.projectId,
          version: reply.version,
          labels: List.unmodifiable(reply.labels),
          inputSpec: _inputSpec(reply.inputSpec),
          artifacts: [for (final a in reply.artifacts) _artifact(a)],
          json: _jsonObject(reply.manifestJson),
        );
      });

  @override
  Future<UpdateCheck> checkForUpdate(
    String project, {
    required ModelFormat format,
    String currentSha256 = '',
    int currentVersion = 0,
  }) =>
      _call(() async {
        final reply = await _models.checkForUpdate(
          pb.CheckForUpdateRequest(
            project: project,
            format: _formatToPb(format),
            currentSha256: currentSha256,
            currentVersion: currentVersion,
          ),
          options: _unary,
        );
        return UpdateCheck(
          notModified: reply.notModified,
          latest: reply.hasLatest() ? _modelVersion(reply.latest) : null,
          artifact: reply.hasArtifact() ? _artifact(reply.artifact) : null,
        );
      });

  @override
  Stream<ModelBytes> downloadModel(
    String project, {
    required int version,
    required ModelFormat format,
    int offset = 0,
  }) async* {
    final stream = _models.downloadModel(pb.DownloadModelRequest(
      project: project,
      version: version,
      format: _formatToPb(format),
      offset: Int64(offset),
    ));
    ModelFileInfo? info;
    var sent = false;
    try {
      await for (final chunk in stream) {
        if (chunk.hasInfo()) {
          final i = chunk.info;
          info = ModelFileInfo(
            version: i.version,
            format: _formatFromPb(i.format),
            size: i.size.toInt(),
            sha256: i.sha256,
            fileName: i.fileName,
          );
          continue;
        }
        final current = info;
        if (current == null) {
          throw MobiletrainException.of(ErrorCodes.badResponse, 'download data before its info');
        }
        sent = true;
        yield ModelBytes(info: current, offset: chunk.offset.toInt(), data: chunk.data);
      }
    } on Object catch (error) {
      throw _mapError(error);
    }
    final current = info;
    if (current == null) {
      throw MobiletrainException.of(ErrorCodes.badResponse, 'download without file info');
    }
    // Nothing left to send (offset == size): report the file so the caller can finish.
    if (!sent) yield ModelBytes(info: current, offset: offset, data: const []);
  }

  @override
  Future<List<Prediction>> predict(
    String project,
    List<int> image, {
    int version = 0,
    int topK = 3,
  }) =>
      _call(() async {
        final reply = await _models.predict(
          pb.PredictRequest(project: project, version: version, image: image, topK: topK),
          options: _unary,
        );
        return [
          for (final p in reply.predictions)
            Prediction(label: p.label, index: p.index, score: p.score),
        ];
      });

  @override
  Future<void> close() => channel.shutdown();

  // --- errors -----------------------------------------------------------------------------

  Future<T> _call<T>(Future<T> Function() body) async {
    try {
      return await body();
    } on Object catch (error) {
      throw _mapError(error);
    }
  }

  // --- conversions: generated messages → domain types -------------------------------------

  static Project _project(pb.Project p) => Project(
        id: p.id,
        name: p.name,
        labels: List.unmodifiable(p.labels),
        labelsFixed: p.labelsFixed,
        inputSpec: _inputSpec(p.inputSpec),
        promotedVersion: p.promotedVersion,
      );

  static InputSpec _inputSpec(pb.InputSpec s) => InputSpec(
        width: s.width,
        height: s.height,
        colorMode: switch (s.colorMode) {
          pb.ColorMode.COLOR_MODE_RGB => ColorMode.rgb,
          pb.ColorMode.COLOR_MODE_GRAYSCALE => ColorMode.grayscale,
          _ => ColorMode.unspecified,
        },
        normalization: switch (s.normalization) {
          pb.Normalization.NORMALIZATION_ZERO_ONE => Normalization.zeroOne,
          pb.Normalization.NORMALIZATION_MINUS_ONE_ONE => Normalization.minusOneOne,
          pb.Normalization.NORMALIZATION_RAW => Normalization.raw,
          _ => Normalization.unspecified,
        },
        channels: s.channels,
        scale: s.scale,
        offset: s.offset,
        audio: s.hasAudio()
            ? AudioSpec(
                sampleRateHz: s.audio.sampleRateHz,
                clipMs: s.audio.clipMs,
                splitLongClips: s.audio.longClips == pb.LongClips.LONG_CLIPS_SPLIT,
              )
            : null,
        sensor: s.hasSensor()
            ? SensorSpec(
                channels: List.of(s.sensor.channels),
                rateHz: s.sensor.rateHz,
                window: s.sensor.window,
                stride: s.sensor.stride,
                pad: s.sensor.framing == pb.SensorFraming.SENSOR_FRAMING_PAD,
              )
            : null,
      );

  static SampleResult _sampleResult(pb.SampleResult r) => SampleResult(
        clientId: r.clientId,
        status: switch (r.status) {
          pb.SampleStatus.SAMPLE_STATUS_ACCEPTED => SampleStatus.accepted,
          pb.SampleStatus.SAMPLE_STATUS_DUPLICATE => SampleStatus.duplicate,
          pb.SampleStatus.SAMPLE_STATUS_REJECTED => SampleStatus.rejected,
          _ => SampleStatus.unspecified,
        },
        sampleId: r.sampleId,
        errorCode: r.errorCode,
        errorName: r.errorCode == 0 ? '' : ErrorCodes.nameOf(r.errorCode),
        message: r.reason,
      );

  static pb.Hyperparameters _hyperparameters(TrainingOptions o) => pb.Hyperparameters(
        epochs: o.epochs,
        batchSize: o.batchSize,
        learningRate: o.learningRate,
        validationSplit: o.validationSplit,
        seed: o.seed,
        architecture: _architecture(o.architecture),
        augmentFlip: o.augmentFlip,
        earlyStoppingPatience: o.earlyStoppingPatience,
        formats: [for (final f in o.formats) _formatToPb(f)],
      );

  static pb.Architecture? _architecture(String? name) => switch (name) {
        null || '' => null,
        'small-cnn' => pb.Architecture.ARCHITECTURE_SMALL_CNN,
        'mobilenet-v3-small' => pb.Architecture.ARCHITECTURE_MOBILENET_V3_SMALL,
        'mobilenet-v2' => pb.Architecture.ARCHITECTURE_MOBILENET_V2,
        _ => throw MobiletrainException.of(
            ErrorCodes.invalidHyperparameters,
            'unknown architecture "$name"; use small-cnn, mobilenet-v3-small or mobilenet-v2',
          ),
      };

  static JobState _state(pb.JobState s) => switch (s) {
        pb.JobState.JOB_STATE_QUEUED => JobState.queued,
        pb.JobState.JOB_STATE_RUNNING => JobState.running,
        pb.JobState.JOB_STATE_SUCCEEDED => JobState.succeeded,
        pb.JobState.JOB_STATE_FAILED => JobState.failed,
        pb.JobState.JOB_STATE_CANCELLED => JobState.cancelled,
        _ => JobState.unspecified,
      };

  static Job _job(pb.Job j) => Job(
        id: j.id,
        projectId: j.projectId,
        state: _state(j.state),
        attempts: j.attempts,
        error: j.error,
        cancelRequested: j.cancelRequested,
        modelVersion: j.modelVersion,
        createdAt: j.hasCreatedAt() ? j.createdAt.toDateTime() : null,
        finishedAt: j.hasFinishedAt() ? j.finishedAt.toDateTime() : null,
      );

  static JobEvent _event(pb.JobEvent e) {
    final payload = e.whichPayload();
    return JobEvent(
      jobId: e.jobId,
      seq: e.seq.toInt(),
      kind: switch (e.kind) {
        pb.EventKind.EVENT_KIND_STATE => EventKind.state,
        pb.EventKind.EVENT_KIND_PROGRESS => EventKind.progress,
        pb.EventKind.EVENT_KIND_EPOCH => EventKind.epoch,
        pb.EventKind.EVENT_KIND_EVALUATION => EventKind.evaluation,
        pb.EventKind.EVENT_KIND_LOG => EventKind.log,
        _ => EventKind.unspecified,
      },
      createdAt: e.hasCreatedAt() ? e.createdAt.toDateTime() : null,
      state: payload == pb.JobEvent_Payload.stateChanged ? _state(e.stateChanged.state) : null,
      error: payload == pb.JobEvent_Payload.stateChanged ? e.stateChanged.error : '',
      progress: payload == pb.JobEvent_Payload.progress
          ? ProgressInfo(
              epoch: e.progress.epoch,
              epochs: e.progress.epochs,
              batch: e.progress.batch,
              batches: e.progress.batches,
              samplesPerSecond: e.progress.samplesPerSecond,
              etaSeconds: e.progress.etaSeconds,
              phase: e.progress.phase == pb.JobPhase.JOB_PHASE_PREPARING_DATA ? 'preparing data' : 'training',
            )
          : null,
      epoch: payload == pb.JobEvent_Payload.epochEnd
          ? EpochInfo(
              epoch: e.epochEnd.epoch,
              epochs: e.epochEnd.epochs,
              loss: e.epochEnd.loss,
              accuracy: e.epochEnd.accuracy,
              valLoss: e.epochEnd.valLoss,
              valAccuracy: e.epochEnd.valAccuracy,
              seconds: e.epochEnd.seconds,
            )
          : null,
      evaluation: payload == pb.JobEvent_Payload.evaluation
          ? EvaluationInfo(
              accuracy: e.evaluation.accuracy,
              labels: List.unmodifiable(e.evaluation.labels),
              confusionMatrix: [
                for (final row in e.evaluation.confusionMatrix)
                  List<int>.unmodifiable(row.counts),
              ],
              tfliteAccuracy: {
                for (final a in e.evaluation.tfliteAccuracy)
                  if (a.format != pb.ModelFormat.MODEL_FORMAT_UNSPECIFIED)
                    _formatFromPb(a.format): a.accuracy,
              },
            )
          : null,
      log: payload == pb.JobEvent_Payload.log ? e.log.message : null,
    );
  }

  static Artifact _artifact(pb.Artifact a) =>
      Artifact(format: _formatFromPb(a.format), size: a.size.toInt(), sha256: a.sha256);

  static ModelVersion _modelVersion(pb.ModelVersion v) => ModelVersion(
        projectId: v.projectId,
        version: v.version,
        jobId: v.jobId,
        current: v.current,
        accuracy: v.metrics.accuracy,
        artifacts: [for (final a in v.artifacts) _artifact(a)],
        createdAt: v.hasCreatedAt() ? v.createdAt.toDateTime() : null,
      );

  static const Map<ModelFormat, pb.ModelFormat> _formats = {
    ModelFormat.unspecified: pb.ModelFormat.MODEL_FORMAT_UNSPECIFIED,
    ModelFormat.keras: pb.ModelFormat.MODEL_FORMAT_KERAS,
    ModelFormat.float32: pb.ModelFormat.MODEL_FORMAT_FLOAT32,
    ModelFormat.float16: pb.ModelFormat.MODEL_FORMAT_FLOAT16,
    ModelFormat.dynamicInt8: pb.ModelFormat.MODEL_FORMAT_DYNAMIC_INT8,
    ModelFormat.int8: pb.ModelFormat.MODEL_FORMAT_INT8,
    ModelFormat.featureExtractor: pb.ModelFormat.MODEL_FORMAT_FEATURE_EXTRACTOR,
    ModelFormat.trainStep: pb.ModelFormat.MODEL_FORMAT_TRAIN_STEP,
    ModelFormat.headInference: pb.ModelFormat.MODEL_FORMAT_HEAD_INFERENCE,
    ModelFormat.headSignatures: pb.ModelFormat.MODEL_FORMAT_HEAD_SIGNATURES,
    ModelFormat.headWeights: pb.ModelFormat.MODEL_FORMAT_HEAD_WEIGHTS,
  };

  static pb.ModelFormat _formatToPb(ModelFormat f) => _formats[f]!;

  static ModelFormat _formatFromPb(pb.ModelFormat f) {
    for (final MapEntry(:key, :value) in _formats.entries) {
      if (value == f) return key;
    }
    return ModelFormat.unspecified;
  }

  static Map<String, Object?> _jsonObject(String text) {
    if (text.isEmpty) return const {};
    try {
      final decoded = jsonDecode(text);
      return decoded is Map<String, Object?> ? decoded : const {};
    } on FormatException {
      return const {};
    }
  }
}

/// The [MobiletrainException] for a failed gRPC call.
///
/// The server's stable code travels in the trailing metadata
/// `mobiletrain-error-code`; without it (the call never reached a mobiletrain
/// handler) the gRPC status says what happened on the way.
MobiletrainException grpcErrorToException(GrpcError error) {
  final message = error.message ?? error.codeName;
  final number = int.tryParse(error.trailers?[errorCodeMetadataKey] ?? '');
  if (number != null && number != 0) {
    return MobiletrainException(
      number,
      ErrorCodes.nameOf(number),
      message,
      retryable: ErrorCodes.isRetryable(number),
      grpcStatus: error.code,
      cause: error,
    );
  }
  final code = switch (error.code) {
    StatusCode.unavailable || StatusCode.aborted => ErrorCodes.network,
    StatusCode.deadlineExceeded => ErrorCodes.timeout,
    StatusCode.cancelled => ErrorCodes.cancelled,
    StatusCode.unauthenticated => ErrorCodes.unauthenticated,
    StatusCode.permissionDenied => ErrorCodes.permissionDenied,
    StatusCode.unimplemented => ErrorCodes.unsupported,
    StatusCode.invalidArgument => ErrorCodes.invalidArgument,
    StatusCode.notFound => ErrorCodes.notFound,
    StatusCode.internal || StatusCode.unknown => ErrorCodes.internal,
    _ => ErrorCodes.badResponse,
  };
  return MobiletrainException(
    code,
    ErrorCodes.nameOf(code),
    message,
    retryable: ErrorCodes.isRetryable(code),
    grpcStatus: error.code,
    cause: error,
  );
}

MobiletrainException _mapError(Object error) => switch (error) {
      final MobiletrainException e => e,
      final GrpcError e => grpcErrorToException(e),
      final TimeoutException e =>
        MobiletrainException.of(ErrorCodes.timeout, 'call timed out', cause: e),
      _ => MobiletrainException.of(ErrorCodes.network, 'gRPC call failed: $error', cause: error),
    };
