/// The operations the client needs from a server, independent of the wire.
///
/// `GrpcTransport` (native platforms) and `RestTransport` (Flutter web, or when
/// forced) implement it; `MobiletrainClient` adds retries, reconnection and the
/// upload queue on top.
library;

import 'models.dart';

/// One wire to a mobiletrain server. Every failure is a `MobiletrainException`.
abstract interface class MobiletrainTransport {
  /// Reads a project (labels and input spec).
  Future<Project> getProject(String project);

  /// Uploads [samples] (one request or stream); results are in the same order.
  ///
  /// Idempotent by [SampleUpload.clientId]: resending after a dropped
  /// connection reports `duplicate` instead of storing a second copy.
  Future<List<SampleResult>> uploadSamples(String project, List<SampleUpload> samples);

  /// Starts a training job (admin tokens only).
  Future<Job> startJob(String project, TrainingOptions options);

  /// Reads a job.
  Future<Job> getJob(String jobId);

  /// Requests cancellation of a job.
  Future<Job> cancelJob(String jobId);

  /// Events with `seq > afterSeq`, live, ending after the terminal state event.
  ///
  /// The stream errors with a `MobiletrainException` when the connection drops;
  /// the client reconnects with the last seq it saw.
  Stream<JobEvent> watchJob(String jobId, {int afterSeq = 0});

  /// Lists published model versions, newest first.
  Future<List<ModelVersion>> listModelVersions(String project);

  /// Reads the manifest of [version] (0: the promoted version).
  Future<Manifest> getManifest(String project, {int version = 0});

  /// Asks whether a newer promoted file of [format] than [currentSha256] exists.
  Future<UpdateCheck> checkForUpdate(
    String project, {
    required ModelFormat format,
    String currentSha256 = '',
    int currentVersion = 0,
  });

  /// Streams the file of [format] of [version] from byte [offset] on.
  Stream<ModelBytes> downloadModel(
    String project, {
    required int version,
    required ModelFormat format,
    int offset = 0,
  });

  /// Server-side prediction of one encoded image.
  Future<List<Prediction>> predict(String project, List<int> image, {int version = 0, int topK = 3});

  /// Closes connections.
  Future<void> close();
}
