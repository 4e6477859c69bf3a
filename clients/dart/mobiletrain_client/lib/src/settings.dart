/// Where the server is and how to talk to it.
library;

import 'dart:math';

import 'package:crypto/crypto.dart' as crypto;

import 'errors.dart';

/// Connection settings shared by both transports.
///
/// One server process listens for gRPC on [grpcPort] and for REST (and the
/// dashboard) on [httpPort]; [useTls] switches both to TLS.
class ConnectionSettings {
  /// Creates settings; only [host] is required.
  const ConnectionSettings({
    required this.host,
    this.grpcPort = 50051,
    this.httpPort = 8000,
    this.useTls = false,
    this.token = '',
    this.preferRest = false,
    this.callTimeout = const Duration(seconds: 30),
    this.connectTimeout = const Duration(seconds: 10),
    this.retry = const RetryPolicy(),
    this.maxMessageBytes = 4 * 1024 * 1024,
    this.certSha256 = '',
  });

  /// Host name or IP address of the server, e.g. `192.168.1.20`.
  final String host;

  /// gRPC port (the server's `--grpc-port`, 50051 by default).
  final int grpcPort;

  /// HTTP port of the REST API (the server's `--http-port`, 8000 by default).
  final int httpPort;

  /// Use TLS (`https`, secure gRPC channel) instead of plain text.
  final bool useTls;

  /// Bearer token (`mt_...`) sent with every call; empty when the server runs without auth.
  final String token;

  /// Use REST even where gRPC is available (e.g. behind an HTTP-only proxy).
  final bool preferRest;

  /// Deadline of one unary call; streams (uploads, downloads, watches) are not limited by it.
  final Duration callTimeout;

  /// How long to wait for a connection to the server.
  final Duration connectTimeout;

  /// How the client retries calls that failed with a retryable error.
  final RetryPolicy retry;

  /// Largest gRPC message to send: the server accepts 8 MiB by default, 4 MiB leaves headroom.
  final int maxMessageBytes;

  /// Hex sha256 of the server certificate (its DER bytes) to trust when the
  /// system does not: the self-signed certificate of `mobiletrain serve --lan`,
  /// whose QR code carries it as `cert_sha256`. Empty: only the system's CAs.
  /// Applies to gRPC and REST on Android, iOS and desktop (a browser decides
  /// for itself on the web).
  final String certSha256;

  /// True when [der] (a certificate the system did not trust) is the pinned one.
  bool trustsCertificate(List<int> der) {
    final pinned = certSha256.replaceAll(':', '').toLowerCase();
    return pinned.isNotEmpty && crypto.sha256.convert(der).toString() == pinned;
  }

  /// Base URI of the REST API, e.g. `http://192.168.1.20:8000`.
  Uri get httpBaseUri => Uri(scheme: useTls ? 'https' : 'http', host: host, port: httpPort);

  /// A copy with some fields changed.
  ConnectionSettings copyWith({
    String? host,
    int? grpcPort,
    int? httpPort,
    bool? useTls,
    String? token,
    bool? preferRest,
    Duration? callTimeout,
    Duration? connectTimeout,
    RetryPolicy? retry,
    int? maxMessageBytes,
    String? certSha256,
  }) =>
      ConnectionSettings(
        host: host ?? this.host,
        grpcPort: grpcPort ?? this.grpcPort,
        httpPort: httpPort ?? this.httpPort,
        useTls: useTls ?? this.useTls,
        token: token ?? this.token,
        preferRest: preferRest ?? this.preferRest,
        callTimeout: callTimeout ?? this.callTimeout,
        connectTimeout: connectTimeout ?? this.connectTimeout,
        retry: retry ?? this.retry,
        maxMessageBytes: maxMessageBytes ?? this.maxMessageBytes,
        certSha256: certSha256 ?? this.certSha256,
      );

  @override
  String toString() => 'ConnectionSettings($host, grpc: $grpcPort, http: $httpPort, '
      'tls: $useTls${certSha256.isEmpty ? '' : ' (pinned)'}, preferRest: $preferRest, token: ${token.isEmpty ? 'none' : 'set'})';
}

/// Exponential backoff with jitter for retryable failures.
///
/// Attempt `n` (from 1) waits `initialDelay * multiplier^(n-1)`, capped at
/// [maxDelay], then scaled by a random factor in `1 ± jitter` so that many
/// phones coming back online do not retry in lockstep.
class RetryPolicy {
  /// Creates a policy; `maxAttempts: 1` disables retries.
  const RetryPolicy({
    this.maxAttempts = 5,
    this.initialDelay = const Duration(milliseconds: 500),
    this.maxDelay = const Duration(seconds: 30),
    this.multiplier = 2.0,
    this.jitter = 0.25,
  })  : assert(maxAttempts >= 1),
        assert(multiplier >= 1.0),
        assert(jitter >= 0 && jitter <= 1);

  /// No retries at all.
  static const RetryPolicy none = RetryPolicy(maxAttempts: 1);

  /// Calls made in total, the first one included.
  final int maxAttempts;

  /// Wait after the first failure.
  final Duration initialDelay;

  /// Longest wait between two attempts.
  final Duration maxDelay;

  /// Growth factor of the wait per failed attempt.
  final double multiplier;

  /// Relative random spread of each wait, 0..1.
  final double jitter;

  /// The wait after failed attempt number [attempt] (1 = the first call failed).
  Duration delayFor(int attempt, [Random? random]) {
    final exponent = max(0, attempt - 1);
    final base = initialDelay.inMicroseconds * pow(multiplier, exponent).toDouble();
    final capped = min(base, maxDelay.inMicroseconds.toDouble());
    final spread = jitter == 0 ? 1.0 : 1 + jitter * (2 * (random ?? _random).nextDouble() - 1);
    return Duration(microseconds: max(0, (capped * spread).round()));
  }

  /// Runs [call], retrying it while it throws a retryable [MobiletrainException].
  ///
  /// [retryIf] narrows which failures are retried (default: `e.retryable`);
  /// a server-sent `retryAfter` is waited at least. [onRetry] sees each
  /// failure before its wait. The last failure is rethrown.
  Future<T> run<T>(
    Future<T> Function() call, {
    bool Function(MobiletrainException error)? retryIf,
    void Function(MobiletrainException error, int attempt, Duration delay)? onRetry,
  }) async {
    for (var attempt = 1;; attempt++) {
      try {
        return await call();
      } on MobiletrainException catch (error) {
        final retry = retryIf?.call(error) ?? error.retryable;
        if (!retry || attempt >= maxAttempts) rethrow;
        var delay = delayFor(attempt);
        final asked = error.retryAfter;
        if (asked != null && asked > delay) delay = asked;
        onRetry?.call(error, attempt, delay);
        await Future<void>.delayed(delay);
      }
    }
  }
}

final Random _random = Random();
