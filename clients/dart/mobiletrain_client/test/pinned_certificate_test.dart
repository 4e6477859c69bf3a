// The pinned certificate of `mobiletrain serve --lan`: a real TLS server with
// the self-signed certificate in test/fixtures/pairing/ (made by
// mobiletrain.client.pairing, as serve --lan makes it), reached through the
// HTTP client the REST transport uses. Only the pinned fingerprint is trusted.
@TestOn('vm')
library;

import 'dart:io';

import 'package:flutter_test/flutter_test.dart';
import 'package:mobiletrain_client/src/rest/http_client_factory_io.dart';
import 'package:mobiletrain_client/src/settings.dart';

void main() {
  late HttpServer server;
  final fixtures = Directory('test/fixtures/pairing');
  final fingerprint = File('${fixtures.path}/cert.sha256').readAsStringSync().trim();

  setUpAll(() async {
    final context = SecurityContext()
      ..useCertificateChain('${fixtures.path}/cert.pem')
      ..usePrivateKey('${fixtures.path}/key.pem');
    server = await HttpServer.bindSecure(InternetAddress.loopbackIPv4, 0, context);
    server.listen((request) {
      request.response
        ..write('{"status":"ok"}')
        ..close();
    });
  });

  tearDownAll(() => server.close(force: true));

  ConnectionSettings settings(String pin) => ConnectionSettings(
        host: '127.0.0.1',
        httpPort: server.port,
        useTls: true,
        certSha256: pin,
      );

  test('trustsCertificate compares the sha256 of the DER bytes', () {
    const hex = '039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81';
    expect(settings(hex).trustsCertificate([1, 2, 3]), isTrue);
    expect(settings(hex.toUpperCase()).trustsCertificate([1, 2, 3]), isTrue);
    expect(settings(hex).trustsCertificate([1, 2, 4]), isFalse);
    expect(settings('').trustsCertificate([1, 2, 3]), isFalse);
  });

  test('the pinned self-signed certificate is accepted', () async {
    final client = createHttpClient(settings(fingerprint));
    final response = await client.get(settings(fingerprint).httpBaseUri.replace(path: '/healthz'));
    expect(response.statusCode, 200);
    expect(response.body, contains('ok'));
    client.close();
  });

  test('another fingerprint is refused', () async {
    final other = fingerprint.replaceRange(0, 2, fingerprint.startsWith('00') ? '11' : '00');
    final client = createHttpClient(settings(other));
    await expectLater(
      client.get(settings(other).httpBaseUri.replace(path: '/healthz')),
      throwsA(anything),
    );
    client.close();
  });

  test('without a pin the system CAs decide (and refuse it)', () async {
    final client = createHttpClient(settings(''));
    await expectLater(
      client.get(settings('').httpBaseUri.replace(path: '/healthz')),
      throwsA(anything),
    );
    client.close();
  });
}
