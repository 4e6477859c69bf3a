/// Parses what the dashboard's device-token QR code (or a pasted text) holds.
///
/// The dashboard ("Models" page, "Device tokens") encodes
/// `{"server": "http://192.168.1.20:8000", "project": "flowers",
/// "project_id": "...", "token": "mt_..."}` as JSON. People also paste just
/// the server URL (optionally with `?token=...&project=...`) or just the
/// token, so those forms are accepted too.
///
/// `mobiletrain serve --lan` shows a QR code with
/// `{"server": "https://192.168.1.20:8000", "grpc_port": 50051, "tls": true,
/// "cert_sha256": "<64 hex digits>"}`: the LAN address and the sha256 of its
/// self-signed certificate, which the client then trusts (and no other).
library;

import 'dart:convert';

/// Connection fields found in a scanned or pasted text; null = not present.
class ConnectionPayload {
  /// Creates a payload; every field is optional.
  const ConnectionPayload({
    this.host,
    this.httpPort,
    this.grpcPort,
    this.useTls,
    this.token,
    this.project,
    this.certSha256,
  });

  /// Server host name or IP address.
  final String? host;

  /// Port of the REST API and dashboard.
  final int? httpPort;

  /// Port of the gRPC API (the QR code does not carry it).
  final int? grpcPort;

  /// True for `https://` servers.
  final bool? useTls;

  /// The bearer token (`mt_...`).
  final String? token;

  /// Project name (or id when no name was given).
  final String? project;

  /// Hex sha256 of the server's certificate to trust (pinned), lower case.
  final String? certSha256;

  /// True when nothing usable was found.
  bool get isEmpty =>
      host == null &&
      httpPort == null &&
      grpcPort == null &&
      useTls == null &&
      token == null &&
      project == null &&
      certSha256 == null;

  /// Parses [text]; throws [FormatException] when it holds nothing usable.
  static ConnectionPayload parse(String text) {
    final trimmed = text.trim();
    if (trimmed.isEmpty) {
      throw const FormatException('The text is empty.');
    }
    final ConnectionPayload payload;
    if (trimmed.startsWith('{')) {
      payload = _fromJson(trimmed);
    } else if (_looksLikeToken(trimmed)) {
      payload = ConnectionPayload(token: trimmed);
    } else {
      payload = _fromUrl(trimmed);
    }
    if (payload.isEmpty) {
      throw FormatException('No server address or token found.', trimmed);
    }
    return payload;
  }

  static bool _looksLikeToken(String text) =>
      text.startsWith('mt_') && !text.contains(RegExp(r'[\s/:?&]'));

  static ConnectionPayload _fromJson(String text) {
    final Object? decoded;
    try {
      decoded = jsonDecode(text);
    } on FormatException catch (e) {
      throw FormatException('Not valid JSON: ${e.message}', text);
    }
    if (decoded is! Map<String, Object?>) {
      throw FormatException('Expected a JSON object.', text);
    }
    final Map<String, Object?> map = decoded;
    String? str(String key) {
      final value = map[key];
      return value is String && value.trim().isNotEmpty ? value.trim() : null;
    }

    int? integer(String key) => switch (map[key]) {
      final int v => v,
      final String v => int.tryParse(v),
      _ => null,
    };

    final server = str('server') ?? str('url') ?? str('base_url');
    final fromServer = server == null ? const ConnectionPayload() : _fromUrl(server);
    final tls = map['tls'] ?? map['use_tls'];
    final fingerprint = str('cert_sha256')?.replaceAll(':', '').toLowerCase();
    if (fingerprint != null && !RegExp(r'^[0-9a-f]{64}$').hasMatch(fingerprint)) {
      throw FormatException('cert_sha256 is not a sha256 fingerprint.', text);
    }
    return ConnectionPayload(
      host: str('host') ?? fromServer.host,
      httpPort: integer('http_port') ?? fromServer.httpPort,
      grpcPort: integer('grpc_port') ?? fromServer.grpcPort,
      useTls: tls is bool ? tls : fromServer.useTls,
      token: str('token') ?? fromServer.token,
      project: str('project') ?? str('project_id') ?? fromServer.project,
      certSha256: fingerprint,
    );
  }

  static ConnectionPayload _fromUrl(String text) {
    // "192.168.1.20:8000" has no scheme; Uri.parse would misread it.
    final withScheme = text.contains('://') ? text : 'http://$text';
    final Uri uri;
    try {
      uri = Uri.parse(withScheme);
    } on FormatException catch (e) {
      throw FormatException('Not a server address: ${e.message}', text);
    }
    if (uri.host.isEmpty) {
      throw FormatException('The address has no host.', text);
    }
    final tls = switch (uri.scheme) {
      'https' || 'grpcs' => true,
      'http' || 'grpc' => false,
      _ => null,
    };
    final query = uri.queryParameters;
    final grpcPort = int.tryParse(query['grpc_port'] ?? '');
    final isGrpcScheme = uri.scheme == 'grpc' || uri.scheme == 'grpcs';
    return ConnectionPayload(
      host: uri.host,
      httpPort: uri.hasPort && !isGrpcScheme ? uri.port : _defaultHttpPort(uri.scheme),
      grpcPort: isGrpcScheme && uri.hasPort ? uri.port : grpcPort,
      useTls: tls,
      token: _nonEmpty(query['token']),
      project: _nonEmpty(query['project']),
    );
  }

  static int? _defaultHttpPort(String scheme) => switch (scheme) {
    'https' => 443,
    'http' => 80,
    _ => null,
  };

  static String? _nonEmpty(String? value) =>
      value == null || value.trim().isEmpty ? null : value.trim();

  @override
  String toString() =>
      'ConnectionPayload(host: $host, httpPort: $httpPort, grpcPort: $grpcPort, '
      'useTls: $useTls, token: ${token == null ? null : '***'}, project: $project, '
      'certSha256: $certSha256)';
}
