/// `MobiletrainClient`: the app-facing facade over one transport.
library;

import 'errors.dart';
import 'grpc/grpc_factory.dart'
    if (dart.library.io) 'grpc/grpc_factory_io.dart' as grpc_factory;
import 'models.dart';
import 'rest/rest_transport.dart';
import 'settings.dart';
import 'transport.dart';

/// Talks to one mobiletrain server: picks the wire, retries what is safe to
/// retry, and keeps job event streams alive across dropped connections.
///
/// Native platforms use gRPC; Flutter web (where browsers cannot send gRPC
/// client streams) and `ConnectionSettings.preferRest` use REST. Every failure
/// is a [MobiletrainException].
class MobiletrainClient {
  /// Connects lazily to the server of [settings]; [transport] overrides the choice (tests).
  MobiletrainClient(this.settings, {MobiletrainTransport? transport})
      : transport = transport ?? chooseTransport(settings);

  /// True when compiled for the web (JavaScript or WebAssembly).
  static const bool isWeb = bool.fromEnvironment('dart.library.js_interop');

  /// The transport [MobiletrainClient] uses for [settings] on this platform.
  static MobiletrainTransport chooseTransport(ConnectionSettings settings) {
    if (!settings.preferRest && !isWeb) {
      final grpc = grpc_factory.createGrpcTransport(settings);
      if (grpc != null) return grpc;
    }
    return RestTransport(settings);
  }

  /// Where the server is and how calls are retried.
  final ConnectionSettings settings;

  /// The wire in use (a `GrpcTransport` or a [RestTransport]).
  final MobiletrainTransport transport;

  /// True when calls go over REST.
  bool get usesRest => transport is RestTransport;

  RetryPolicy get _retry => settings.retry;

  /// Retries [call] on retryable failures (network, timeouts, rate limits).
  Future<T> _idempotent<T>(Future<T> Function() call) => _retry.run(call);

  /// Retries [call] only when the server refused it before doing anything (rate limits).
  Future<T> _once<T>(Future<T> Function() call) => _retry.run(
        call,
        retryIf: (e) =>
            e.code == ErrorCodes.rateLimited || e.code == ErrorCodes.tooManyStreams,
      );

  /// Reads a project: its labels and the input spec that preprocessing follows.
  Future<Project> getProject(String project) =>
      _idempotent(() => transport.getProject(project));

  /// Uploads [samples] and returns one result per sample, in order.
  ///
  /// Safe to retry: a sample the server already holds (same client id) comes
  /// back `duplicate`. For uploads that must survive app restarts use `UploadQueue`.
  Future<List<SampleResult>> uploadSamples(String project, List<SampleUpload> samples) =>
      _idempotent(() => transport.uploadSamples(project, samples));

  /// Starts a training job (admin token).
  ///
  /// Not retried after a network failure, which could start a second job;
  /// check the project's jobs before starting again.
  Future<Job> startJob(String project, [TrainingOptions options = const TrainingOptions()]) =>
      _once(() => transport.startJob(project, options));

  /// Reads a job.
  Future<Job> getJob(String jobId) => _idempotent(() => transport.getJob(jobId));

  /// Asks a job to stop; watch it for the final `cancelled` state.
  Future<Job> cancelJob(String jobId) => _idempotent(() => transport.cancelJob(jobId));

  /// The job's events after [afterSeq], live, until its final state event.
  ///
  /// A dropped connection is reopened from the last seq received, with
  /// backoff, so every event arrives exactly once and in order. The stream
  /// fails only on a permanent error (unknown job, bad token) or after
  /// `settings.retry.maxAttempts` consecutive failed reconnects. Cancelling
  /// the subscription closes the connection.
  Stream<JobEvent> watchJob(String jobId, {int afterSeq = 0}) async* {
    var seq = afterSeq;
    var failures = 0;
    var quietCloses = 0;
    while (true) {
      var received = false;
      try {
        await for (final event in transport.watchJob(jobId, afterSeq: seq)) {
          if (event.seq <= seq) continue; // a replay after a reconnect
          seq = event.seq;
          received = true;
          failures = 0;
          quietCloses = 0;
          yield event;
          if (event.isTerminal) return;
        }
      } on MobiletrainException catch (error) {
        failures++;
        if (!error.retryable || failures >= _retry.maxAttempts) rethrow;
        await Future<void>.delayed(_retry.delayFor(failures));
        continue;
      }
      if (received) continue; // closed early (proxy, server restart): resume at once
      // Closed without any event: either the job ended before (the REST server
      // answers 204 when everything was delivered) or something cut the stream.
      final job = await getJob(jobId);
      if (job.state.isTerminal) return;
      quietCloses++;
      await Future<void>.delayed(_retry.delayFor(quietCloses));
    }
  }

  /// Published model versions, newest first.
  Future<List<ModelVersion>> listModelVersions(String project) =>
      _idempotent(() => transport.listModelVersions(project));

  /// The manifest of [version] (0 = the current version).
  Future<Manifest> getManifest(String project, {int version = 0}) =>
      _idempotent(() => transport.getManifest(project, version: version));

  /// Whether a newer model file of [format] than the one the app has exists.
  Future<UpdateCheck> checkForUpdate(
    String project, {
    required ModelFormat format,
    String currentSha256 = '',
    int currentVersion = 0,
  }) =>
      _idempotent(() => transport.checkForUpdate(
            project,
            format: format,
            currentSha256: currentSha256,
            currentVersion: currentVersion,
          ));

  /// The bytes of a model file from [offset] on (not retried: resume with the
  /// offset reached instead; `ModelManager` does that).
  Stream<ModelBytes> downloadModel(
    String project, {
    required int version,
    required ModelFormat format,
    int offset = 0,
  }) =>
      transport.downloadModel(project, version: version, format: format, offset: offset);

  /// Classifies one encoded image on the server (to compare with on-device results).
  Future<List<Prediction>> predict(
    String project,
    List<int> image, {
    int version = 0,
    int topK = 3,
  }) =>
      _idempotent(() => transport.predict(project, image, version: version, topK: topK));

  /// Closes the connection; the client cannot be used afterwards.
  Future<void> close() => transport.close();
}
