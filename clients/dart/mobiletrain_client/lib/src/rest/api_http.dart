/// JSON over HTTP to the mobiletrain REST API: URLs, the bearer token, and
/// failures turned into [MobiletrainException]s. Shared by `RestTransport` and
/// `FederatedParticipant`; not exported.
library;

import 'dart:async';
import 'dart:convert';

import 'package:http/http.dart' as http;

import '../errors.dart';
import '../settings.dart';
import 'http_client_factory.dart'
    if (dart.library.io) 'http_client_factory_io.dart' as http_factory;

/// One HTTP client bound to a server's settings.
class ApiHttp {
  /// Uses [client] when given (shared, or a mock in tests), else its own.
  ApiHttp(this.settings, {http.Client? client})
      : client = client ?? http_factory.createHttpClient(settings),
        _ownsClient = client == null;

  /// Where the server is, its token and timeouts.
  final ConnectionSettings settings;

  /// The underlying HTTP client.
  final http.Client client;
  final bool _ownsClient;

  /// The URL of [path] (which starts with `/v1/`) on the server, keeping any
  /// path prefix of `settings.httpBaseUri` (a server behind a reverse proxy).
  Uri uri(String path, [Map<String, String>? query]) {
    final base = settings.httpBaseUri;
    final prefix = base.path.endsWith('/') ? base.path.substring(0, base.path.length - 1) : base.path;
    return base.replace(
      path: '$prefix$path',
      queryParameters: query == null || query.isEmpty ? null : query,
    );
  }

  /// `Accept` and, when there is a token, `Authorization: Bearer`.
  Map<String, String> headers({String accept = 'application/json'}) => {
        'Accept': accept,
        if (settings.token.isNotEmpty) 'Authorization': 'Bearer ${settings.token}',
      };

  /// One JSON request: the decoded object of a 2xx answer, else the server's error.
  Future<Map<String, Object?>> json(
    String method,
    String path, {
    Object? body,
    Map<String, String>? query,
    Duration? timeout,
  }) async {
    final limit = timeout ?? settings.callTimeout;
    // Abortable, so that a call that timed out (sending or reading) drops its
    // connection instead of leaving it open.
    final abort = Completer<void>();
    final request = http.AbortableRequest(method, uri(path, query), abortTrigger: abort.future)
      ..headers.addAll(headers());
    if (body != null) {
      request.headers['Content-Type'] = 'application/json';
      request.bodyBytes = utf8.encode(jsonEncode(body));
    }
    final http.Response response;
    try {
      final streamed = await send(request, timeout: limit);
      response = await http.Response.fromStream(streamed).timeout(limit);
    } on TimeoutException catch (e) {
      throw MobiletrainException.of(ErrorCodes.timeout, '$method $path timed out', cause: e);
    } on http.ClientException catch (e) {
      throw MobiletrainException.of(ErrorCodes.network, e.message, cause: e);
    } finally {
      if (!abort.isCompleted) abort.complete(); // no-op once the response is complete
    }
    if (response.statusCode < 200 || response.statusCode >= 300) {
      throw MobiletrainException.fromHttp(response.statusCode, decodeText(response.bodyBytes),
          headers: response.headers);
    }
    return decodeObject(decodeText(response.bodyBytes));
  }

  /// Sends [request]; connection failures and timeouts become [MobiletrainException]s.
  ///
  /// (On native platforms `package:http` reports socket errors as `ClientException`.)
  Future<http.StreamedResponse> send(http.BaseRequest request, {required Duration timeout}) async {
    try {
      return await client.send(request).timeout(timeout);
    } on TimeoutException catch (e) {
      throw MobiletrainException.of(
          ErrorCodes.timeout, '${request.method} ${request.url.path} timed out',
          cause: e);
    } on http.ClientException catch (e) {
      throw MobiletrainException.of(ErrorCodes.network, e.message, cause: e);
    }
  }

  /// The server's error in a non-2xx streamed [response].
  Future<MobiletrainException> error(http.StreamedResponse response) async {
    final body = await http.Response.fromStream(response);
    return MobiletrainException.fromHttp(response.statusCode, decodeText(body.bodyBytes),
        headers: response.headers);
  }

  /// Closes the HTTP client if this object created it.
  void close() {
    if (_ownsClient) client.close();
  }
}

/// [stream], failing with a `timeout` [MobiletrainException] once it has been
/// silent for [idle] (a half-open connection never ends by itself).
Stream<T> idleTimeout<T>(Stream<T> stream, Duration idle, String what) =>
    stream.timeout(idle, onTimeout: (sink) {
      sink.addError(MobiletrainException.of(ErrorCodes.timeout, '$what for $idle'));
      sink.close();
    });

/// UTF-8 text of a body, tolerating malformed bytes (error pages from proxies).
String decodeText(List<int> bytes) => utf8.decode(bytes, allowMalformed: true);

/// [text] as a JSON object, or a `bad_response` error.
Map<String, Object?> decodeObject(String text) {
  try {
    final decoded = jsonDecode(text);
    if (decoded is Map<String, Object?>) return decoded;
  } on FormatException catch (e) {
    throw MobiletrainException.of(ErrorCodes.badResponse, 'invalid JSON: ${e.message}', cause: e);
  }
  throw MobiletrainException.of(ErrorCodes.badResponse, 'expected a JSON object');
}
