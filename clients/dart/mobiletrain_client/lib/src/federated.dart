/// Federated learning from the device side, over REST.
///
/// A device registers with the project's running session, downloads the
/// session's on-device files once, computes its images' features with the
/// frozen feature extractor, then repeats: ask for a task (long poll), run the
/// train-step model over its local data starting from the task's global
/// weights, and send the new weights back. The images never leave the phone.
/// This is what `mobiletrain/client/simulator.py` does with LiteRT.
///
/// Routes: `POST /v1/projects/{project}/federated/devices`,
/// `GET /v1/projects/{project}/federated/task`,
/// `POST /v1/projects/{project}/federated/updates` and
/// `GET /v1/federated/sessions/{id}/files/{format}`. Weights travel as base64
/// of little-endian float32 tensors back to back (the `head-weights` layout).
library;

import 'dart:async';
import 'dart:convert';
import 'dart:io';
import 'dart:typed_data';

import 'package:crypto/crypto.dart';
import 'package:http/http.dart' as http;

import 'errors.dart';
import 'on_device_training.dart';
import 'rest/api_http.dart';
import 'settings.dart';

/// One downloadable file of a federated session.
class FederatedFile {
  /// Describes a file.
  const FederatedFile({
    required this.format,
    required this.sha256,
    required this.size,
    required this.downloadUrl,
  });

  /// Parses the server's JSON.
  factory FederatedFile.fromJson(Map<String, Object?> json) => FederatedFile(
        format: json['format']! as String,
        sha256: json['sha256']! as String,
        size: (json['size']! as num).toInt(),
        downloadUrl: json['download_url'] as String? ?? '',
      );

  /// Format name, e.g. `train-step` or `head-weights` (the current weights).
  final String format;

  /// Lower-case hex SHA-256.
  final String sha256;

  /// Size in bytes.
  final int size;

  /// Path of the download route.
  final String downloadUrl;
}

/// A federated session as a device sees it.
class FederatedSession {
  /// Builds a session.
  const FederatedSession({
    required this.id,
    required this.projectId,
    required this.jobId,
    required this.state,
    required this.labels,
    required this.currentRound,
    required this.files,
    required this.ondevice,
    this.modelVersion,
    this.heldOutAccuracy,
    this.config = const {},
    this.error = '',
  });

  /// Parses the server's JSON.
  factory FederatedSession.fromJson(Map<String, Object?> json) => FederatedSession(
        id: json['id']! as String,
        projectId: json['project_id'] as String? ?? '',
        jobId: json['job_id'] as String? ?? '',
        state: json['state'] as String? ?? '',
        labels: [for (final l in json['labels'] as List<Object?>? ?? const []) '$l'],
        currentRound: (json['current_round'] as num?)?.toInt() ?? 0,
        modelVersion: (json['model_version'] as num?)?.toInt(),
        heldOutAccuracy: (json['held_out_accuracy'] as num?)?.toDouble(),
        files: {
          for (final f in json['files'] as List<Object?>? ?? const [])
            if (f is Map<String, Object?>) (f['format']! as String): FederatedFile.fromJson(f),
        },
        ondevice: json['ondevice'] as Map<String, Object?>? ?? const {},
        config: json['config'] as Map<String, Object?>? ?? const {},
        error: json['error'] as String? ?? '',
      );

  /// Session id.
  final String id;

  /// Project id.
  final String projectId;

  /// Job whose events report the session's progress.
  final String jobId;

  /// `preparing`, `running`, `finished`, `failed` or `cancelled`.
  final String state;

  /// Class labels in output order.
  final List<String> labels;

  /// The newest round opened (0: none yet).
  final int currentRound;

  /// Newest model version the session published.
  final int? modelVersion;

  /// Held-out accuracy of that version.
  final double? heldOutAccuracy;

  /// Files by format; empty until the server has exported them.
  final Map<String, FederatedFile> files;

  /// The on-device section: head, tensors, input spec, labels.
  final Map<String, Object?> ondevice;

  /// The session's settings.
  final Map<String, Object?> config;

  /// Why the session failed; empty otherwise.
  final String error;

  /// True once the session will not give more work.
  bool get isOver => state == 'finished' || state == 'failed' || state == 'cancelled';

  /// True once the train-step file exists (the session left `preparing`).
  bool get isReady => files.containsKey('train-step');

  /// The head, labels and input spec of [ondevice].
  OnDeviceSpec get onDeviceSpec => OnDeviceSpec.fromJson(ondevice, labels: labels);
}

/// What a task request can answer.
enum FederatedTaskStatus {
  /// Train now.
  task,

  /// No work yet: poll again after `retryAfter`.
  wait,

  /// The session ended: stop.
  finished,
}

/// The answer to a task request; round fields are set with status `task`.
class FederatedTask {
  /// Builds a task answer.
  const FederatedTask({
    required this.status,
    required this.sessionId,
    this.message = '',
    this.retryAfter = Duration.zero,
    this.round = 0,
    this.rounds = 0,
    this.deadline,
    this.tensors = const [],
    this.weights,
    this.learningRate = 0,
    this.localEpochs = 1,
    this.batchSize = 0,
    this.mu = 0,
    this.labels = const [],
    this.modelVersion,
  });

  /// Parses the server's JSON.
  factory FederatedTask.fromJson(Map<String, Object?> json) {
    final status = FederatedTaskStatus.values.firstWhere(
      (s) => s.name == json['status'],
      orElse: () => FederatedTaskStatus.wait,
    );
    final retry = (json['retry_after_seconds'] as num?)?.toDouble() ?? 0;
    final base = FederatedTask(
      status: status,
      sessionId: json['session_id'] as String? ?? '',
      message: json['message'] as String? ?? '',
      retryAfter: Duration(milliseconds: (retry * 1000).round()),
    );
    final task = json['task'];
    if (task is! Map<String, Object?>) return base;
    return FederatedTask(
      status: status,
      sessionId: task['session_id'] as String? ?? base.sessionId,
      message: base.message,
      retryAfter: base.retryAfter,
      round: (task['round']! as num).toInt(),
      rounds: (task['rounds'] as num?)?.toInt() ?? 0,
      deadline: DateTime.tryParse(task['deadline'] as String? ?? ''),
      tensors: [
        for (final t in task['tensors'] as List<Object?>? ?? const [])
          if (t case {'name': final String name, 'shape': final List<Object?> shape})
            (name, [for (final d in shape) (d! as num).toInt()]),
      ],
      weights: base64Decode(task['weights'] as String? ?? ''),
      learningRate: (task['learning_rate'] as num?)?.toDouble() ?? 0,
      localEpochs: (task['local_epochs'] as num?)?.toInt() ?? 1,
      batchSize: (task['batch_size'] as num?)?.toInt() ?? 0,
      mu: (task['mu'] as num?)?.toDouble() ?? 0,
      labels: [for (final l in task['labels'] as List<Object?>? ?? const []) '$l'],
      modelVersion: (task['model_version'] as num?)?.toInt(),
    );
  }

  /// Train, wait or stop.
  final FederatedTaskStatus status;

  /// The session (send it back with the update).
  final String sessionId;

  /// Why there is no task (for people).
  final String message;

  /// With `wait`: poll again after this.
  final Duration retryAfter;

  /// Round number (send it back with the update).
  final int round;

  /// Rounds of the session.
  final int rounds;

  /// Updates after this are stale.
  final DateTime? deadline;

  /// `(name, shape)` of the weight tensors, in order.
  final List<(String, List<int>)> tensors;

  /// The global weights to start from (`head-weights` layout).
  final Uint8List? weights;

  /// The train-step model's `lr` input.
  final double learningRate;

  /// Passes over the local data.
  final int localEpochs;

  /// The train-step model's batch size.
  final int batchSize;

  /// The train-step model's `mu` input (FedProx; 0 = plain SGD).
  final double mu;

  /// Class labels in output order.
  final List<String> labels;

  /// Newest published model version.
  final int? modelVersion;
}

/// Whether an update counts in its round.
class FederatedUpdateResult {
  /// Builds a result.
  const FederatedUpdateResult({
    required this.accepted,
    required this.round,
    required this.reason,
    required this.message,
  });

  /// Parses the server's JSON.
  factory FederatedUpdateResult.fromJson(Map<String, Object?> json) => FederatedUpdateResult(
        accepted: json['accepted']! as bool,
        round: (json['round'] as num?)?.toInt() ?? 0,
        reason: json['reason'] as String? ?? '',
        message: json['message'] as String? ?? '',
      );

  /// True when the update counts.
  final bool accepted;

  /// The round it was sent for.
  final int round;

  /// Why it was rejected (`stale-round`, `not-selected`, `duplicate`,
  /// `sample-count`, `shape`, `dtype`, `not-finite`, `device-failed`); empty
  /// when accepted.
  final String reason;

  /// Details for people.
  final String message;
}

/// What happened in one round on this device (for progress displays).
class FederatedRoundReport {
  /// Builds a report.
  const FederatedRoundReport({
    required this.round,
    required this.rounds,
    required this.loss,
    required this.result,
  });

  /// The round trained.
  final int round;

  /// Rounds of the session.
  final int rounds;

  /// Mean local loss.
  final double loss;

  /// The server's verdict on the update.
  final FederatedUpdateResult result;
}

/// Takes part in a project's federated session over REST.
///
/// ```dart
/// final device = FederatedParticipant(settings, project: 'flowers');
/// await device.register(info: {'platform': 'android'});
/// final extractor = await device.loadFeatureExtractor(); // waits for the files
/// final features = [for (final photo in photos) extractor.features(photo)];
/// final trainer = await device.loadTrainer();
/// await device.participate(trainer: trainer, features: features, labels: labels);
/// ```
class FederatedParticipant {
  /// A participant for [project]; pass [httpClient] to share one (or to test).
  FederatedParticipant(
    this.settings, {
    required this.project,
    http.Client? httpClient,
    this.pollWait = const Duration(seconds: 20),
  }) : _http = ApiHttp(settings, client: httpClient);

  /// Server address, token and timeouts.
  final ConnectionSettings settings;

  /// Project id or name.
  final String project;

  /// How long one task request may wait on the server for work (at most 60 s).
  final Duration pollWait;

  final ApiHttp _http;
  Map<String, String> _info = const {};

  /// The id from [register]; null before.
  String? deviceId;

  /// The session joined by [register].
  FederatedSession? session;

  String get _projectPath => '/v1/projects/${Uri.encodeComponent(project)}/federated';

  /// Joins the project's running session (`no_active_session`, code 91, when
  /// there is none). [info] are free-form facts about the device (at most 16).
  Future<FederatedSession> register({Map<String, String> info = const {}}) async {
    _info = info;
    final json = await _http.json('POST', '$_projectPath/devices', body: {'info': info});
    deviceId = json['device_id']! as String;
    final joined = FederatedSession.fromJson(json['session']! as Map<String, Object?>);
    session = joined;
    return joined;
  }

  /// Reads the session again (to see its files once it leaves `preparing`).
  Future<FederatedSession> refreshSession() async {
    final id = session?.id;
    if (id == null) throw StateError('register first');
    final json = await _http.json('GET', '/v1/federated/sessions/${Uri.encodeComponent(id)}');
    final fresh = FederatedSession.fromJson(json);
    session = fresh;
    return fresh;
  }

  /// Polls the session until its on-device files exist (a new session
  /// exports them first, in state `preparing`); throws [StateError] when the
  /// session ends before that.
  Future<FederatedSession> waitUntilReady({Duration poll = const Duration(seconds: 1)}) async {
    var current = session ?? (throw StateError('register first'));
    while (!current.isReady) {
      if (current.isOver) {
        throw StateError('the session ended (${current.state}) before its files were ready');
      }
      await Future<void>.delayed(poll);
      current = await settings.retry.run(refreshSession);
    }
    return current;
  }

  /// Asks for work, waiting on the server up to [wait] (default [pollWait]).
  ///
  /// Fails with `device_not_registered` (code 93) after the server forgot
  /// this device: [register] again.
  Future<FederatedTask> getTask({Duration? wait}) async {
    final id = deviceId;
    if (id == null) throw StateError('register first');
    final seconds = (wait ?? pollWait).inMilliseconds / 1000;
    final json = await _http.json(
      'GET',
      '$_projectPath/task',
      query: {'device_id': id, 'wait_seconds': '$seconds'},
      timeout: settings.callTimeout + (wait ?? pollWait),
    );
    return FederatedTask.fromJson(json);
  }

  /// Sends the weights after local training of [task]'s round.
  ///
  /// [weights] use the `head-weights` layout ([HeadWeights.toBytes]).
  /// [numSamples] is the number of local samples (the FedAvg weight).
  Future<FederatedUpdateResult> pushUpdate(
    FederatedTask task,
    Uint8List weights, {
    required int numSamples,
    Map<String, double> metrics = const {},
  }) =>
      _update(task, weights: weights, numSamples: numSamples, metrics: metrics);

  /// Tells the server that local training of [task] failed, so the round
  /// does not wait for this device.
  Future<FederatedUpdateResult> reportFailure(FederatedTask task, String error, {int numSamples = 0}) =>
      _update(task, numSamples: numSamples, error: error.isEmpty ? 'failed' : error);

  Future<FederatedUpdateResult> _update(
    FederatedTask task, {
    Uint8List? weights,
    required int numSamples,
    Map<String, double> metrics = const {},
    String error = '',
  }) async {
    final id = deviceId;
    if (id == null) throw StateError('register first');
    final json = await _http.json('POST', '$_projectPath/updates', body: {
      'device_id': id,
      'session_id': task.sessionId,
      'round': task.round,
      'num_samples': numSamples,
      'weights': weights == null ? '' : base64Encode(weights),
      'dtype': 'float32',
      'metrics': metrics,
      'error': error,
    });
    return FederatedUpdateResult.fromJson(json);
  }

  /// Downloads one of the session's files (`feature-extractor`, `train-step`,
  /// `head-inference`, `head-weights`...) and checks its sha256.
  ///
  /// With [cacheDir], files are kept there by sha256 and not downloaded again.
  Future<Uint8List> downloadFile(String format, {Directory? cacheDir}) async {
    final current = session;
    if (current == null) throw StateError('register first');
    final file = current.files[format];
    if (file == null) {
      throw MobiletrainException.of(
        ErrorCodes.formatNotFound,
        'the session has no $format file (yet)',
      );
    }
    final cached = cacheDir == null ? null : File('${cacheDir.path}/${file.sha256}.bin');
    if (cached != null && await cached.exists()) {
      final bytes = await cached.readAsBytes();
      if (sha256.convert(bytes).toString() == file.sha256) return bytes;
    }
    final bytes = await settings.retry.run(() => _downloadOnce(current.id, file));
    if (cached != null) {
      await cached.parent.create(recursive: true);
      final tmp = File('${cached.path}.tmp');
      await tmp.writeAsBytes(bytes, flush: true);
      await tmp.rename(cached.path);
    }
    return bytes;
  }

  Future<Uint8List> _downloadOnce(String sessionId, FederatedFile file) async {
    final uri = _http.uri(
      '/v1/federated/sessions/${Uri.encodeComponent(sessionId)}/files/'
      '${Uri.encodeComponent(file.format)}',
    );
    final abort = Completer<void>();
    final request = http.AbortableRequest('GET', uri, abortTrigger: abort.future)
      ..headers.addAll(_http.headers(accept: 'application/octet-stream'));
    final http.StreamedResponse response;
    final Uint8List bytes;
    try {
      response =
          await _http.send(request, timeout: settings.connectTimeout + settings.callTimeout);
      // A half-open connection sends nothing and never ends: fail after an idle spell.
      bytes = await http.ByteStream(
              idleTimeout(response.stream, settings.callTimeout, 'no file bytes'))
          .toBytes();
    } on http.ClientException catch (e) {
      throw MobiletrainException.of(ErrorCodes.network, 'connection lost: ${e.message}', cause: e);
    } finally {
      if (!abort.isCompleted) abort.complete(); // drops the connection after a failure
    }
    if (response.statusCode != 200) {
      throw MobiletrainException.fromHttp(response.statusCode, utf8.decode(bytes, allowMalformed: true),
          headers: response.headers);
    }
    final expected = response.headers['x-content-sha256'] ?? file.sha256;
    if (sha256.convert(bytes).toString() != expected) {
      throw MobiletrainException.of(
        ErrorCodes.dataLoss,
        'the ${file.format} file does not match its sha256',
      );
    }
    return bytes;
  }

  /// Downloads the train-step model and the current weights and loads them.
  Future<OnDeviceTrainer> loadTrainer({Directory? cacheDir, int threads = 2}) async {
    final current = await waitUntilReady();
    final spec = current.onDeviceSpec;
    final model = await downloadFile('train-step', cacheDir: cacheDir);
    final weights = HeadWeights.fromBytes(await downloadFile('head-weights', cacheDir: cacheDir), spec.head);
    return OnDeviceTrainer.fromBuffers(model, weights, spec, threads: threads);
  }

  /// Downloads and loads the session's frozen feature extractor.
  Future<FeatureExtractor> loadFeatureExtractor({Directory? cacheDir, int threads = 2}) async {
    final current = await waitUntilReady();
    final input = current.onDeviceSpec.input;
    if (input == null) throw StateError('the session does not describe its input');
    final model = await downloadFile('feature-extractor', cacheDir: cacheDir);
    return FeatureExtractor.fromBuffer(model, input, threads: threads);
  }

  /// Takes part until the session finishes (or [shouldStop] returns true):
  /// ask for a task, train [trainer] on [features]/[labels] from the task's
  /// global weights, send the new weights. Network failures are retried with
  /// the settings' policy; a forgotten device registers again.
  ///
  /// [onRound] sees each round's result. Returns the number of rounds this
  /// device trained.
  Future<int> participate({
    required OnDeviceTrainer trainer,
    required List<List<double>> features,
    required List<int> labels,
    void Function(FederatedRoundReport report)? onRound,
    bool Function()? shouldStop,
    int seed = 0,
  }) async {
    if (deviceId == null) await register(info: _info);
    var trained = 0;
    while (!(shouldStop?.call() ?? false)) {
      final FederatedTask task;
      try {
        task = await settings.retry.run(getTask);
      } on MobiletrainException catch (e) {
        if (e.code != ErrorCodes.deviceNotRegistered) rethrow;
        await register(info: _info);
        continue;
      }
      if (task.status == FederatedTaskStatus.finished) return trained;
      if (task.status == FederatedTaskStatus.wait) {
        if (task.retryAfter > Duration.zero) await Future<void>.delayed(task.retryAfter);
        continue;
      }
      final FederatedUpdateResult result;
      final double loss;
      try {
        final global = HeadWeights.fromBytes(task.weights ?? Uint8List(0), trainer.head);
        trainer
          ..weights = global
          ..anchors = global;
        final run = trainer.fit(
          features,
          labels,
          epochs: task.localEpochs,
          learningRate: task.learningRate,
          mu: task.mu,
          seed: seed + task.round,
        );
        loss = run.meanLoss;
        trainer.anchors = null;
        if (!run.weights.isFinite) {
          throw StateError('local training diverged (non-finite weights)');
        }
        result = await settings.retry.run(() => pushUpdate(
              task,
              run.weights.toBytes(),
              numSamples: run.numSamples,
              metrics: {if (loss.isFinite) 'loss': loss},
            ));
      } on MobiletrainException {
        rethrow;
      } on Object catch (e) {
        // Local training failed: say so, so the round need not wait for us.
        trainer.anchors = null;
        await settings.retry.run(() => reportFailure(task, '$e'));
        continue;
      }
      trained++;
      onRound?.call(FederatedRoundReport(
        round: task.round,
        rounds: task.rounds,
        loss: loss,
        result: result,
      ));
    }
    return trained;
  }

  /// Closes the HTTP client if this participant created it.
  void close() {
    _http.close();
  }
}
