/// Platforms with `dart:io` (Android, iOS, desktop): an HTTP client that also
/// trusts the certificate pinned in `ConnectionSettings.certSha256`.
library;

import 'dart:io';

import 'package:http/http.dart' as http;
import 'package:http/io_client.dart';

import '../settings.dart';

/// The HTTP client for [settings]: system trust, plus the pinned certificate.
http.Client createHttpClient(ConnectionSettings settings) {
  if (settings.certSha256.isEmpty) return http.Client();
  // badCertificateCallback runs only for certificates the system rejected;
  // accepting exactly the pinned one keeps every other certificate refused.
  final inner = HttpClient()
    ..badCertificateCallback = (X509Certificate certificate, String host, int port) =>
        settings.trustsCertificate(certificate.der);
  return IOClient(inner);
}
