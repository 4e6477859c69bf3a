/// The app's connection settings and their JSON file in the documents folder.
library;

import 'dart:convert';
import 'dart:io';

import 'package:mobiletrain_client/on_device.dart';

import 'connection_payload.dart';

/// Model file formats the app offers (the ones `ImageClassifier` can run).
const List<ModelFormat> classifierFormats = [
  ModelFormat.float32,
  ModelFormat.float16,
  ModelFormat.dynamicInt8,
  ModelFormat.int8,
];

/// Everything the user configures, kept in memory and in a JSON file.
class AppSettings {
  /// Creates settings; the defaults match a local development server.
  const AppSettings({
    this.host = '',
    this.grpcPort = 50051,
    this.httpPort = 8000,
    this.useTls = false,
    this.token = '',
    this.project = '',
    this.preferRest = false,
    this.downscaleUploads = true,
    this.modelFormat = ModelFormat.float32,
    this.certSha256 = '',
  });

  /// Server host name or IP address as the phone reaches it.
  final String host;

  /// gRPC port (uploads, training, downloads on Android and iOS).
  final int grpcPort;

  /// REST/SSE port (also the dashboard's).
  final int httpPort;

  /// Use TLS for both ports.
  final bool useTls;

  /// Bearer token: a device token from the dashboard, or an admin token.
  final String token;

  /// Project name or id.
  final String project;

  /// Use REST even where gRPC is available.
  final bool preferRest;

  /// Shrink photos to the project's input size before queueing them.
  final bool downscaleUploads;

  /// Which model file the app downloads and runs.
  final ModelFormat modelFormat;

  /// Pinned sha256 of the server's self-signed certificate (from the QR code
  /// of `mobiletrain serve --lan`); empty = the system's CAs only.
  final String certSha256;

  /// True when the app has enough to try connecting.
  bool get isComplete => host.isNotEmpty && project.isNotEmpty;

  /// The client library's settings for these values.
  ConnectionSettings toConnectionSettings() => ConnectionSettings(
    host: host,
    grpcPort: grpcPort,
    httpPort: httpPort,
    useTls: useTls,
    token: token,
    preferRest: preferRest,
    certSha256: certSha256,
  );

  /// A copy with the given fields replaced.
  AppSettings copyWith({
    String? host,
    int? grpcPort,
    int? httpPort,
    bool? useTls,
    String? token,
    String? project,
    bool? preferRest,
    bool? downscaleUploads,
    ModelFormat? modelFormat,
    String? certSha256,
  }) => AppSettings(
    host: host ?? this.host,
    grpcPort: grpcPort ?? this.grpcPort,
    httpPort: httpPort ?? this.httpPort,
    useTls: useTls ?? this.useTls,
    token: token ?? this.token,
    project: project ?? this.project,
    preferRest: preferRest ?? this.preferRest,
    downscaleUploads: downscaleUploads ?? this.downscaleUploads,
    modelFormat: modelFormat ?? this.modelFormat,
    certSha256: certSha256 ?? this.certSha256,
  );

  /// These settings with the fields a scanned or pasted [payload] carries.
  AppSettings merge(ConnectionPayload payload) => copyWith(
    host: payload.host,
    httpPort: payload.httpPort,
    grpcPort: payload.grpcPort,
    useTls: payload.useTls,
    token: payload.token,
    project: payload.project,
    certSha256: payload.certSha256,
  );

  /// JSON for the settings file.
  Map<String, Object?> toJson() => {
    'host': host,
    'grpc_port': grpcPort,
    'http_port': httpPort,
    'use_tls': useTls,
    'token': token,
    'project': project,
    'prefer_rest': preferRest,
    'downscale_uploads': downscaleUploads,
    'model_format': modelFormat.wireName,
    'cert_sha256': certSha256,
  };

  /// Reads [json], keeping defaults for missing or mistyped fields.
  factory AppSettings.fromJson(Map<String, Object?> json) {
    const d = AppSettings();
    T pick<T>(String key, T fallback) {
      final value = json[key];
      return value is T ? value : fallback;
    }

    ModelFormat format;
    try {
      format = ModelFormat.fromWireName(pick('model_format', d.modelFormat.wireName));
    } on ArgumentError {
      format = d.modelFormat;
    }
    return AppSettings(
      host: pick('host', d.host),
      grpcPort: pick('grpc_port', d.grpcPort),
      httpPort: pick('http_port', d.httpPort),
      useTls: pick('use_tls', d.useTls),
      token: pick('token', d.token),
      project: pick('project', d.project),
      preferRest: pick('prefer_rest', d.preferRest),
      downscaleUploads: pick('downscale_uploads', d.downscaleUploads),
      modelFormat: classifierFormats.contains(format) ? format : d.modelFormat,
      certSha256: pick('cert_sha256', d.certSha256),
    );
  }
}

/// Loads and saves [AppSettings] as `settings.json` in [directory].
///
/// The token is stored in plain text: fine for a development example; a
/// production app would keep it in the platform keystore instead.
class SettingsStore {
  /// Creates a store in [directory] (the app documents folder).
  SettingsStore(this.directory);

  /// Folder that holds the file.
  final Directory directory;

  File get _file => File('${directory.path}${Platform.pathSeparator}settings.json');

  /// The saved settings, or the defaults when none were saved or the file is unreadable.
  Future<AppSettings> load() async {
    try {
      final text = await _file.readAsString();
      final decoded = jsonDecode(text);
      if (decoded is Map<String, Object?>) return AppSettings.fromJson(decoded);
    } on IOException {
      // First start: no file yet.
    } on FormatException {
      // A damaged file must not keep the app from starting.
    }
    return const AppSettings();
  }

  /// Writes [settings] atomically (temporary file, then rename).
  Future<void> save(AppSettings settings) async {
    await directory.create(recursive: true);
    final tmp = File('${_file.path}.tmp');
    await tmp.writeAsString(jsonEncode(settings.toJson()), flush: true);
    await tmp.rename(_file.path);
  }
}
