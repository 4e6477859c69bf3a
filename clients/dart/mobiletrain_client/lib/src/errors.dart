/// The one exception type of the client, carrying the server's stable error code.
///
/// Both wires report failures with the same numeric catalog
/// (`mobiletrain.v1.ErrorCode`): gRPC in the trailing metadata key
/// `mobiletrain-error-code`, REST in the JSON body's `code` (and the
/// `X-Mobiletrain-Error-Code` header). Apps branch on [MobiletrainException.code]
/// and never parse messages. Failures that never reached the server (no
/// network, a timeout, a garbled reply) get the negative codes of
/// [ErrorCodes].
library;

import 'dart:convert';

/// Numeric error codes: the server catalog (positive) plus client-side codes (negative).
abstract final class ErrorCodes {
  /// No error.
  static const int none = 0;

  // --- client side: the request did not get a catalog answer ---------------------------------

  /// The server could not be reached, or the connection dropped (retryable).
  static const int network = -1;

  /// The call took longer than `ConnectionSettings.callTimeout` (retryable).
  static const int timeout = -2;

  /// The server answered something this client does not understand.
  static const int badResponse = -3;

  /// Downloaded bytes do not match their announced SHA-256 (retryable: download again).
  static const int dataLoss = -4;

  /// The call was cancelled by the app.
  static const int cancelled = -5;

  /// The operation is not available on this platform or transport.
  static const int unsupported = -6;

  // --- the server's catalog (proto/mobiletrain/v1/common.proto, ErrorCode) -------------------

  /// Unexpected server failure.
  static const int internal = 1;

  /// A request field is invalid.
  static const int invalidArgument = 2;

  /// Something requested does not exist.
  static const int notFound = 3;

  /// Something to be created exists already.
  static const int alreadyExists = 4;

  /// The system is not in a state that allows the operation.
  static const int failedPrecondition = 5;

  /// No project has this id or name.
  static const int projectNotFound = 10;

  /// A project with this name exists already.
  static const int projectExists = 11;

  /// The project name is not allowed.
  static const int invalidName = 12;

  /// The input spec is out of range.
  static const int invalidInputSpec = 13;

  /// The task type is not supported.
  static const int unsupportedTask = 14;

  /// The project has a queued or running job; cancel it first.
  static const int projectBusy = 15;

  /// No sample has this id in the project.
  static const int sampleNotFound = 20;

  /// The label is empty or malformed.
  static const int invalidLabel = 21;

  /// The project has a fixed label set that lacks this label.
  static const int unknownLabel = 22;

  /// The sample has no bytes.
  static const int emptySample = 23;

  /// The sample exceeds the server's size limit.
  static const int sampleTooLarge = 24;

  /// The bytes are not a JPEG, PNG or WebP image.
  static const int unsupportedMediaType = 25;

  /// The image could not be decoded.
  static const int corruptImage = 26;

  /// The image has too many pixels.
  static const int imageTooLarge = 27;

  /// The client sample id is empty or malformed.
  static const int invalidClientId = 28;

  /// Chunks are missing, out of order, or do not match the declared size or SHA-256.
  static const int incompleteSample = 29;

  /// The page token or page size is invalid.
  static const int invalidPage = 30;

  /// The sample's stored bytes are missing or damaged; upload it again.
  static const int sampleDamaged = 31;

  /// The client id is already used by a sample with other bytes or another label.
  static const int clientIdConflict = 34;

  /// No training job has this id.
  static const int jobNotFound = 40;

  /// A hyperparameter is out of range.
  static const int invalidHyperparameters = 41;

  /// The project has too few samples (or labels) to train.
  static const int notEnoughData = 42;

  /// The job has already finished.
  static const int jobFinished = 43;

  /// No model version has this number.
  static const int modelNotFound = 50;

  /// The model version was not exported in this format.
  static const int formatNotFound = 51;

  /// The format is unknown or unspecified.
  static const int invalidFormat = 52;

  /// The project has no trained model yet.
  static const int noModel = 53;

  /// The requested byte offset is beyond the end of the file.
  static const int invalidRange = 54;

  /// The backbone's pretrained weights could not be loaded.
  static const int baseWeightsUnavailable = 55;

  /// The release policy is invalid.
  static const int invalidReleasePolicy = 56;

  /// There is no earlier current version to roll back to.
  static const int noPreviousVersion = 57;

  /// No token, or an unknown, expired or revoked one.
  static const int unauthenticated = 60;

  /// The token's role may not do this.
  static const int permissionDenied = 61;

  /// No token with this id.
  static const int tokenNotFound = 62;

  /// The project holds the most samples, bytes or concurrent jobs it may.
  static const int quotaExceeded = 70;

  /// Too many requests per second from this token; retry later.
  static const int rateLimited = 71;

  /// This token has the most concurrent streams it may; retry later.
  static const int tooManyStreams = 72;

  /// The call ran past the server's deadline (a stream past its maximum age):
  /// reconnect and resume from the last sequence number or offset.
  static const int deadlineExceeded = 73;

  /// The server's storage is full (or below its free-space reserve); retry later.
  static const int storageFull = 74;

  /// The request body (or gRPC message) is too large.
  static const int bodyTooLarge = 76;

  /// The request headers (or gRPC metadata) are too large.
  static const int headersTooLarge = 77;

  /// The request body arrived too slowly.
  static const int requestTimeout = 78;

  /// Too many requests in flight; retry shortly.
  static const int serverBusy = 79;

  /// A resumable upload's chunk does not start at the server's offset.
  static const int uploadOffsetMismatch = 80;

  /// A chunk's checksum does not match its bytes.
  static const int checksumMismatch = 81;

  /// No resumable upload with this id.
  static const int uploadNotFound = 82;

  /// No federated session with this id.
  static const int sessionNotFound = 90;

  /// The project has no running federated session to join.
  static const int noActiveSession = 91;

  /// The project already has a running federated session.
  static const int sessionActive = 92;

  /// This device id is not registered with the running session; register again.
  static const int deviceNotRegistered = 93;

  /// The device id was registered by another token; name only your own devices.
  static const int deviceNotOwned = 94;

  /// This token registered the most devices per session it may (default 1).
  static const int tooManyDevices = 95;

  /// A free-form field is longer than the server allows, or has too many entries.
  static const int fieldTooLong = 96;

  /// The input spec does not belong to the project's task (an audio spec on an image project).
  static const int wrongTaskSpec = 100;

  /// The audio could not be decoded: not a well-formed WAV file.
  static const int corruptAudio = 110;

  /// The WAV encoding is not PCM 8/16/24/32-bit integer or 32-bit float.
  static const int unsupportedAudioFormat = 111;

  /// The audio clip is longer than the project allows.
  static const int audioTooLong = 112;

  /// The audio clip is too short.
  static const int audioTooShort = 113;

  /// The audio sample rate is outside the supported range.
  static const int unsupportedSampleRate = 114;

  /// The sensor data could not be read (CSV with a header row, or JSON `{rate_hz, channels, values}`).
  static const int corruptSensorData = 115;

  /// The sample's channels are not the project's channels.
  static const int sensorChannelsMismatch = 116;

  /// The sensor data has a missing, NaN or infinite value.
  static const int sensorMissingValue = 117;

  /// The sensor recording is longer than the project allows.
  static const int sensorTooLong = 118;

  /// The sensor recording is too short.
  static const int sensorTooShort = 119;

  /// The boxes are not a list of `{label, x_min, y_min, x_max, y_max}` objects.
  static const int invalidAnnotation = 120;

  /// A box coordinate is outside 0..1 of the image (or NaN).
  static const int boxOutOfImage = 121;

  /// A box has no area (max <= min) or is under one pixel of the image.
  static const int boxDegenerate = 122;

  /// A box label is empty, reserved or not one of the project's fixed labels.
  static const int unknownBoxLabel = 123;

  /// An image has more boxes than allowed (100).
  static const int tooManyBoxes = 124;

  /// An annotation file is not readable COCO JSON, Pascal VOC XML or YOLO text.
  static const int annotationFormat = 125;

  static const Map<int, String> _names = {
    network: 'network',
    timeout: 'timeout',
    badResponse: 'bad_response',
    dataLoss: 'data_loss',
    cancelled: 'cancelled',
    unsupported: 'unsupported',
    internal: 'internal',
    invalidArgument: 'invalid_argument',
    notFound: 'not_found',
    alreadyExists: 'already_exists',
    failedPrecondition: 'failed_precondition',
    projectNotFound: 'project_not_found',
    projectExists: 'project_exists',
    invalidName: 'invalid_name',
    invalidInputSpec: 'invalid_input_spec',
    unsupportedTask: 'unsupported_task',
    projectBusy: 'project_busy',
    sampleNotFound: 'sample_not_found',
    invalidLabel: 'invalid_label',
    unknownLabel: 'unknown_label',
    emptySample: 'empty_sample',
    sampleTooLarge: 'sample_too_large',
    unsupportedMediaType: 'unsupported_media_type',
    corruptImage: 'corrupt_image',
    imageTooLarge: 'image_too_large',
    invalidClientId: 'invalid_client_id',
    incompleteSample: 'incomplete_sample',
    invalidPage: 'invalid_page',
    sampleDamaged: 'sample_damaged',
    clientIdConflict: 'client_id_conflict',
    jobNotFound: 'job_not_found',
    invalidHyperparameters: 'invalid_hyperparameters',
    notEnoughData: 'not_enough_data',
    jobFinished: 'job_finished',
    modelNotFound: 'model_not_found',
    formatNotFound: 'format_not_found',
    invalidFormat: 'invalid_format',
    noModel: 'no_model',
    invalidRange: 'invalid_range',
    baseWeightsUnavailable: 'base_weights_unavailable',
    invalidReleasePolicy: 'invalid_release_policy',
    noPreviousVersion: 'no_previous_version',
    unauthenticated: 'unauthenticated',
    permissionDenied: 'permission_denied',
    tokenNotFound: 'token_not_found',
    quotaExceeded: 'quota_exceeded',
    rateLimited: 'rate_limited',
    tooManyStreams: 'too_many_streams',
    deadlineExceeded: 'deadline_exceeded',
    storageFull: 'storage_full',
    bodyTooLarge: 'body_too_large',
    headersTooLarge: 'headers_too_large',
    requestTimeout: 'request_timeout',
    serverBusy: 'server_busy',
    uploadOffsetMismatch: 'upload_offset_mismatch',
    checksumMismatch: 'checksum_mismatch',
    uploadNotFound: 'upload_not_found',
    sessionNotFound: 'session_not_found',
    noActiveSession: 'no_active_session',
    sessionActive: 'session_active',
    deviceNotRegistered: 'device_not_registered',
    deviceNotOwned: 'device_not_owned',
    tooManyDevices: 'too_many_devices',
    fieldTooLong: 'field_too_long',
    wrongTaskSpec: 'wrong_task_spec',
    corruptAudio: 'corrupt_audio',
    unsupportedAudioFormat: 'unsupported_audio_format',
    audioTooLong: 'audio_too_long',
    audioTooShort: 'audio_too_short',
    unsupportedSampleRate: 'unsupported_sample_rate',
    corruptSensorData: 'corrupt_sensor_data',
    sensorChannelsMismatch: 'sensor_channels_mismatch',
    sensorMissingValue: 'sensor_missing_value',
    sensorTooLong: 'sensor_too_long',
    sensorTooShort: 'sensor_too_short',
    invalidAnnotation: 'invalid_annotation',
    boxOutOfImage: 'box_out_of_image',
    boxDegenerate: 'box_degenerate',
    unknownBoxLabel: 'unknown_box_label',
    tooManyBoxes: 'too_many_boxes',
    annotationFormat: 'annotation_format',
  };

  /// The stable lower-case name of [code] (`corrupt_image`), or `error_<code>` if unknown.
  static String nameOf(int code) => _names[code] ?? 'error_$code';

  /// Whether a failure with [code] may succeed when simply tried again later.
  static bool isRetryable(int code) =>
      code == network ||
      code == timeout ||
      code == dataLoss ||
      code == rateLimited ||
      code == tooManyStreams ||
      code == deadlineExceeded ||
      code == requestTimeout ||
      code == serverBusy;
}

/// A failed call: the server's stable [code] and [name], a human [message].
///
/// [retryable] is true for failures that a later identical call may not have
/// (network drops, timeouts, rate limits); the client and the upload queue
/// retry those with backoff.
class MobiletrainException implements Exception {
  /// Creates an exception; [name] is normally `ErrorCodes.nameOf(code)`.
  MobiletrainException(
    this.code,
    this.name,
    this.message, {
    this.retryable = false,
    this.httpStatus,
    this.grpcStatus,
    this.retryAfter,
    this.details = const {},
    this.cause,
  });

  /// An exception for [code] with its catalog name; retryable as the code says.
  factory MobiletrainException.of(
    int code,
    String message, {
    int? httpStatus,
    int? grpcStatus,
    Duration? retryAfter,
    Map<String, Object?> details = const {},
    Object? cause,
  }) =>
      MobiletrainException(
        code,
        ErrorCodes.nameOf(code),
        message,
        retryable: ErrorCodes.isRetryable(code),
        httpStatus: httpStatus,
        grpcStatus: grpcStatus,
        retryAfter: retryAfter,
        details: details,
        cause: cause,
      );

  /// The exception a REST error response describes.
  ///
  /// Reads the catalog body `{"code", "error", "message", "details"?}`; a body
  /// without one (a proxy's HTML page, say) is classified by the HTTP status.
  factory MobiletrainException.fromHttp(
    int status,
    String body, {
    Map<String, String> headers = const {},
  }) {
    Object? decoded;
    try {
      decoded = body.isEmpty ? null : jsonDecode(body);
    } on FormatException {
      decoded = null;
    }
    final headerCode = int.tryParse(headers['x-mobiletrain-error-code'] ?? '');
    final code = switch (decoded) {
      {'code': final int number} => number,
      _ => headerCode,
    };
    if (decoded is Map<String, Object?> && code != null) {
      final details = switch (decoded['details']) {
        final Map<String, Object?> map => map,
        _ => const <String, Object?>{},
      };
      return MobiletrainException(
        code,
        switch (decoded['error']) {
          final String slug => slug,
          _ => ErrorCodes.nameOf(code),
        },
        switch (decoded['message']) {
          final String text => text,
          _ => 'HTTP $status',
        },
        retryable: ErrorCodes.isRetryable(code) || status == 503,
        httpStatus: status,
        retryAfter: switch (details['retry_after_seconds']) {
          final num seconds => Duration(milliseconds: (seconds * 1000).round()),
          _ => null,
        },
        details: details,
      );
    }
    // No catalog body: gateways and load balancers answer like this while the server is away.
    if (status == 502 || status == 503 || status == 504) {
      return MobiletrainException.of(ErrorCodes.network, 'server unavailable (HTTP $status)',
          httpStatus: status);
    }
    if (status == 408) {
      return MobiletrainException.of(ErrorCodes.timeout, 'request timed out (HTTP 408)',
          httpStatus: status);
    }
    if (status == 429) {
      return MobiletrainException.of(ErrorCodes.rateLimited, 'too many requests (HTTP 429)',
          httpStatus: status);
    }
    return MobiletrainException.of(
      ErrorCodes.badResponse,
      'unexpected HTTP $status${body.isEmpty ? '' : ': ${_shorten(body)}'}',
      httpStatus: status,
    );
  }

  /// Stable numeric code: an `ErrorCode` number, or a negative [ErrorCodes] client code.
  final int code;

  /// Stable lower-case name of [code], e.g. `corrupt_image` or `network`.
  final String name;

  /// Human-readable explanation; show it, do not parse it.
  final String message;

  /// True when trying again later may succeed.
  final bool retryable;

  /// HTTP status of a REST failure, if any.
  final int? httpStatus;

  /// gRPC status code of a gRPC failure, if any.
  final int? grpcStatus;

  /// How long the server asked the client to wait (rate limits), if it said.
  final Duration? retryAfter;

  /// Structured details the server sent (validation errors, offsets...).
  final Map<String, Object?> details;

  /// The underlying error (socket exception, gRPC error...), for logs.
  final Object? cause;

  /// True for failures that happened before a server answer (network, timeout).
  bool get isNetworkError => code == ErrorCodes.network || code == ErrorCodes.timeout;

  @override
  String toString() => 'MobiletrainException($code $name): $message';
}

String _shorten(String text) => text.length <= 200 ? text : '${text.substring(0, 200)}…';
