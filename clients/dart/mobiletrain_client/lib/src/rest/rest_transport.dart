/// The REST/JSON wire (docs/rest.md): works everywhere `package:http` does,
/// including Flutter web where gRPC client streaming is unavailable.
library;

import 'dart:async';
import 'dart:convert';

import 'package:http/http.dart' as http;

import '../errors.dart';
import '../models.dart';
import '../settings.dart';
import '../transport.dart';
import 'api_http.dart';

/// [MobiletrainTransport] over the server's REST API.
///
/// Uploads go as JSON with base64 images (`samples:base64`) in requests of at
/// most [maxRequestBytes]; `watchJob` reads the Server-Sent Events stream and
/// resumes with `Last-Event-ID`; downloads resume with a `Range` header.
class RestTransport implements MobiletrainTransport {
  /// Creates a transport; pass [httpClient] to share one (or to test with a mock).
  RestTransport(
    this.settings, {
    http.Client? httpClient,
    this.maxRequestBytes = 4 * 1024 * 1024,
    this.streamIdleTimeout = const Duration(seconds: 45),
  }) : _http = ApiHttp(settings, client: httpClient);

  /// Where the server is.
  final ConnectionSettings settings;

  /// Upper bound of one upload request body; larger batches are split.
  final int maxRequestBytes;

  /// An event stream silent for this long is treated as dropped (the server
  /// sends a keep-alive comment every 15 s).
  final Duration streamIdleTimeout;

  final ApiHttp _http;

  // --- projects ---------------------------------------------------------------------------

  @override
  Future<Project> getProject(String project) async =>
      Project.fromJson(await _http.json('GET', '/v1/projects/${_seg(project)}'));

  // --- samples ----------------------------------------------------------------------------

  @override
  Future<List<SampleResult>> uploadSamples(String project, List<SampleUpload> samples) async {
    final results = <SampleResult>[];
    for (final batch in _batches(samples)) {
      final body = [
        for (final s in batch)
          {'image': base64Encode(s.bytes), 'label': s.label, 'client_id': s.clientId},
      ];
      final reply =
          await _http.json('POST', '/v1/projects/${_seg(project)}/samples:base64', body: body);
      final parsed = [
        for (final r in _list(reply['results']))
          if (r is Map<String, Object?>) SampleResult.fromJson(r),
      ];
      if (parsed.length != batch.length) {
        throw MobiletrainException.of(ErrorCodes.badResponse,
            'upload answered ${parsed.length} results for ${batch.length} samples');
      }
      results.addAll(parsed);
    }
    return results;
  }

  /// Splits [samples] so that each request's base64 body stays under [maxRequestBytes].
  Iterable<List<SampleUpload>> _batches(List<SampleUpload> samples) sync* {
    var batch = <SampleUpload>[];
    var size = 0;
    for (final s in samples) {
      final encoded = (s.bytes.length + 2) ~/ 3 * 4 + s.label.length + s.clientId.length + 64;
      if (batch.isNotEmpty && size + encoded > maxRequestBytes) {
        yield batch;
        batch = <SampleUpload>[];
        size = 0;
      }
      batch.add(s);
      size += encoded;
    }
    if (batch.isNotEmpty) yield batch;
  }

  // --- jobs -------------------------------------------------------------------------------

  @override
  Future<Job> startJob(String project, TrainingOptions options) async => Job.fromJson(
      await _http.json('POST', '/v1/projects/${_seg(project)}/jobs', body: options.toJson()));

  @override
  Future<Job> getJob(String jobId) async =>
      Job.fromJson(await _http.json('GET', '/v1/jobs/${_seg(jobId)}'));

  @override
  Future<Job> cancelJob(String jobId) async =>
      Job.fromJson(await _http.json('POST', '/v1/jobs/${_seg(jobId)}:cancel'));

  @override
  Stream<JobEvent> watchJob(String jobId, {int afterSeq = 0}) async* {
    final abort = Completer<void>();
    final request = http.AbortableRequest(
      'GET',
      _http.uri('/v1/jobs/${_seg(jobId)}/events'),
      abortTrigger: abort.future,
    )..headers.addAll({
        ..._http.headers(accept: 'text/event-stream'),
        'Cache-Control': 'no-cache',
        'Last-Event-ID': '$afterSeq',
      });
    try {
      // Inside the try: a send that times out still completes `abort` below, so the
      // half-open connection (and the server's watcher) is dropped, not leaked.
      final response =
          await _http.send(request, timeout: settings.connectTimeout + settings.callTimeout);
      if (response.statusCode == 204) return; // the job ended and everything was delivered
      if (response.statusCode != 200) throw await _http.error(response);
      final messages = idleTimeout(response.stream, streamIdleTimeout, 'no event or keep-alive')
          .transform(utf8.decoder)
          .transform(const LineSplitter())
          .transform(const SseDecoder());
      await for (final message in _guard(messages)) {
        if (message.data.isEmpty) continue;
        final event = JobEvent.fromJson(decodeObject(message.data));
        yield event;
        if (event.isTerminal) return;
      }
    } finally {
      // Also reached when the listener cancels: drop the connection, stop the server's watch.
      if (!abort.isCompleted) abort.complete();
    }
  }

  // --- models -----------------------------------------------------------------------------

  @override
  Future<List<ModelVersion>> listModelVersions(String project) async {
    final reply = await _http.json('GET', '/v1/projects/${_seg(project)}/models');
    return [
      for (final v in _list(reply['versions']))
        if (v is Map<String, Object?>) ModelVersion.fromJson(v),
    ];
  }

  @override
  Future<Manifest> getManifest(String project, {int version = 0}) async {
    final json = await _http.json('GET', '/v1/projects/${_seg(project)}/models/$version/manifest');
    return Manifest.fromJson(json, version: version == 0 ? null : version);
  }

  @override
  Future<UpdateCheck> checkForUpdate(
    String project, {
    required ModelFormat format,
    String currentSha256 = '',
    int currentVersion = 0,
  }) async {
    final reply = await _http.json('GET', '/v1/projects/${_seg(project)}/models:check-update', query: {
      'format': format.wireName,
      if (currentSha256.isNotEmpty) 'sha256': currentSha256,
      if (currentVersion > 0) 'version': '$currentVersion',
    });
    return UpdateCheck.fromJson(reply);
  }

  @override
  Stream<ModelBytes> downloadModel(
    String project, {
    required int version,
    required ModelFormat format,
    int offset = 0,
  }) async* {
    final abort = Completer<void>();
    final request = http.AbortableRequest(
      'GET',
      _http.uri('/v1/projects/${_seg(project)}/models/$version/download', {'format': format.wireName}),
      abortTrigger: abort.future,
    )..headers.addAll({
        ..._http.headers(accept: 'application/octet-stream'),
        if (offset > 0) 'Range': 'bytes=$offset-',
      });
    try {
      // Inside the try: a send that times out still completes `abort` below, so the
      // half-open connection (and the server's watcher) is dropped, not leaked.
      final response =
          await _http.send(request, timeout: settings.connectTimeout + settings.callTimeout);
      final headers = response.headers;
      if (response.statusCode == 416 && offset > 0) {
        // Asking from the very end of the file: nothing left to send, like gRPC's info-only reply.
        final fileSize = _totalFromContentRange(headers['content-range']);
        if (fileSize != null && fileSize == offset && headers.containsKey('x-model-version')) {
          await response.stream.drain<void>();
          yield ModelBytes(info: _fileInfo(headers, format, fileSize), offset: offset, data: const []);
          return;
        }
      }
      if (response.statusCode != 200 && response.statusCode != 206) {
        throw await _http.error(response);
      }
      final partial = response.statusCode == 206;
      final total = partial
          ? _totalFromContentRange(headers['content-range'])
          : int.tryParse(headers['content-length'] ?? '');
      if (total == null) {
        throw MobiletrainException.of(ErrorCodes.badResponse, 'download without a file size');
      }
      final info = _fileInfo(headers, format, total);
      // A server that ignored the Range header sends the whole file: skip what we have.
      var skip = partial ? 0 : offset;
      var position = partial ? offset : 0;
      // A half-open connection (the phone switched networks) sends nothing and never
      // ends: without an idle timeout `ModelManager.update` would wait forever.
      await for (final chunk
          in _guard(idleTimeout(response.stream, streamIdleTimeout, 'no model bytes'))) {
        var data = chunk;
        if (skip > 0) {
          if (data.length <= skip) {
            skip -= data.length;
            position += data.length;
            continue;
          }
          data = data.sublist(skip);
          position += skip;
          skip = 0;
        }
        yield ModelBytes(info: info, offset: position, data: data);
        position += data.length;
      }
      if (position != total) {
        throw MobiletrainException.of(
            ErrorCodes.network, 'download ended at byte $position of $total');
      }
    } finally {
      if (!abort.isCompleted) abort.complete();
    }
  }

  ModelFileInfo _fileInfo(Map<String, String> headers, ModelFormat format, int total) {
    final disposition = headers['content-disposition'] ?? '';
    final name = RegExp(r'filename="([^"]+)"').firstMatch(disposition)?.group(1);
    return ModelFileInfo(
      version: int.tryParse(headers['x-model-version'] ?? '') ?? 0,
      format: switch (headers['x-model-format']) {
        final String wire when wire.isNotEmpty => ModelFormat.tryFromWireName(wire) ??
            (throw MobiletrainException.of(
                ErrorCodes.badResponse, 'download of an unknown model format "$wire"')),
        _ => format,
      },
      size: total,
      sha256: headers['x-content-sha256'] ?? _unquote(headers['etag'] ?? ''),
      fileName: name ?? 'model-${format.wireName}',
    );
  }

  @override
  Future<List<Prediction>> predict(
    String project,
    List<int> image, {
    int version = 0,
    int topK = 3,
  }) async {
    final reply = await _http.json('POST', '/v1/projects/${_seg(project)}/predict:base64',
        body: {'image': base64Encode(image), 'version': version, 'top_k': topK});
    return [
      for (final p in _list(reply['predictions']))
        if (p is Map<String, Object?>) Prediction.fromJson(p),
    ];
  }

  @override
  Future<void> close() async {
    _http.close();
  }

  /// [stream] with transport failures mapped to retryable network errors.
  Stream<T> _guard<T>(Stream<T> stream) => stream.handleError(
        (Object error, StackTrace stack) => throw MobiletrainException.of(
            ErrorCodes.network, 'connection lost: $error',
            cause: error),
        test: (error) => error is! MobiletrainException,
      );
}

/// One Server-Sent Events message.
class SseMessage {
  /// Creates a message.
  const SseMessage({this.id, this.event = 'message', this.data = '', this.retry});

  /// The `id:` field (the job event's seq), if sent.
  final String? id;

  /// The `event:` field; `message` when absent.
  final String event;

  /// The `data:` lines joined with newlines.
  final String data;

  /// The `retry:` reconnection delay the server suggested, if sent.
  final Duration? retry;
}

/// Turns the lines of a `text/event-stream` into [SseMessage]s (WHATWG rules:
/// `:` comments skipped, one optional space after the colon, a blank line
/// dispatches). Messages without data (such as `retry:` alone) are still
/// delivered so callers see the retry hint.
class SseDecoder extends StreamTransformerBase<String, SseMessage> {
  /// Creates the decoder.
  const SseDecoder();

  @override
  Stream<SseMessage> bind(Stream<String> lines) async* {
    String? id;
    String? event;
    Duration? retry;
    final data = <String>[];
    var seen = false;
    await for (final line in lines) {
      if (line.isEmpty) {
        if (seen) {
          yield SseMessage(id: id, event: event ?? 'message', data: data.join('\n'), retry: retry);
        }
        event = null;
        retry = null;
        data.clear();
        seen = false;
        continue;
      }
      if (line.startsWith(':')) continue;
      final colon = line.indexOf(':');
      final field = colon < 0 ? line : line.substring(0, colon);
      var value = colon < 0 ? '' : line.substring(colon + 1);
      if (value.startsWith(' ')) value = value.substring(1);
      switch (field) {
        case 'id':
          id = value;
          seen = true;
        case 'event':
          event = value;
          seen = true;
        case 'data':
          data.add(value);
          seen = true;
        case 'retry':
          final ms = int.tryParse(value);
          if (ms != null) {
            retry = Duration(milliseconds: ms);
            seen = true;
          }
      }
    }
  }
}

String _seg(String value) => Uri.encodeComponent(value);

String _unquote(String etag) {
  final value = etag.startsWith('W/') ? etag.substring(2) : etag;
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"')
      ? value.substring(1, value.length - 1)
      : value;
}

int? _totalFromContentRange(String? header) {
  final match = RegExp(r'/(\d+)\s*$').firstMatch(header ?? '');
  return match == null ? null : int.parse(match.group(1)!);
}

List<Object?> _list(Object? value) => value is List<Object?> ? value : const [];
