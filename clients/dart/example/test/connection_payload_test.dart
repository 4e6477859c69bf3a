import 'package:flutter_test/flutter_test.dart';
import 'package:mobiletrain_example/src/connection_payload.dart';

void main() {
  group('ConnectionPayload.parse', () {
    test('reads the dashboard QR JSON', () {
      final p = ConnectionPayload.parse(
        '{"server":"http://192.168.1.20:8000","project":"flowers",'
        '"project_id":"p1","token":"mt_abc"}',
      );
      expect(p.host, '192.168.1.20');
      expect(p.httpPort, 8000);
      expect(p.useTls, isFalse);
      expect(p.token, 'mt_abc');
      expect(p.project, 'flowers');
      expect(p.grpcPort, isNull);
    });

    test('https server without a port uses 443 and TLS', () {
      final p = ConnectionPayload.parse('{"server":"https://train.example.com","token":"mt_x"}');
      expect(p.host, 'train.example.com');
      expect(p.httpPort, 443);
      expect(p.useTls, isTrue);
    });

    test('falls back to project_id when the name is missing', () {
      final p = ConnectionPayload.parse('{"server":"http://h:1","project_id":"p1"}');
      expect(p.project, 'p1');
    });

    test('reads a URL with query parameters', () {
      final p = ConnectionPayload.parse('http://10.0.0.5:8080/?token=mt_q&project=cats&grpc_port=6000');
      expect(p.host, '10.0.0.5');
      expect(p.httpPort, 8080);
      expect(p.grpcPort, 6000);
      expect(p.token, 'mt_q');
      expect(p.project, 'cats');
    });

    test('reads host:port without a scheme', () {
      final p = ConnectionPayload.parse('192.168.1.20:8000');
      expect(p.host, '192.168.1.20');
      expect(p.httpPort, 8000);
    });

    test('reads a bare token', () {
      final p = ConnectionPayload.parse('  mt_AbC-123_xyz \n');
      expect(p.token, 'mt_AbC-123_xyz');
      expect(p.host, isNull);
    });

    // The exact text of a `mobiletrain serve --lan` QR code; the Python test
    // tests/e2e/test_pairing.py checks that the server still writes this format.
    test('reads the serve --lan QR JSON with the pinned certificate', () {
      final p = ConnectionPayload.parse(
        '{"server":"https://192.168.1.20:8000","grpc_port":50051,"tls":true,'
        '"cert_sha256":"4c9af84625bbe4c09d2e0bb89959152070d62b480e488cb511cafa80830b16a2"}',
      );
      expect(p.host, '192.168.1.20');
      expect(p.httpPort, 8000);
      expect(p.grpcPort, 50051);
      expect(p.useTls, isTrue);
      expect(p.certSha256, '4c9af84625bbe4c09d2e0bb89959152070d62b480e488cb511cafa80830b16a2');
      expect(p.token, isNull);
    });

    test('rejects a cert_sha256 that is not 64 hex digits', () {
      expect(
        () => ConnectionPayload.parse('{"server":"https://h:1","cert_sha256":"abc"}'),
        throwsFormatException,
      );
    });

    test('rejects empty text and JSON without fields', () {
      expect(() => ConnectionPayload.parse('   '), throwsFormatException);
      expect(() => ConnectionPayload.parse('{}'), throwsFormatException);
      expect(() => ConnectionPayload.parse('[1, 2]'), throwsFormatException);
      expect(() => ConnectionPayload.parse('{not json'), throwsFormatException);
    });
  });
}
