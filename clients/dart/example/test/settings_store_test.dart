import 'dart:io';

import 'package:flutter_test/flutter_test.dart';
import 'package:mobiletrain_client/on_device.dart';
import 'package:mobiletrain_example/src/connection_payload.dart';
import 'package:mobiletrain_example/src/settings_store.dart';

void main() {
  late Directory dir;

  setUp(() async => dir = await Directory.systemTemp.createTemp('mt_settings'));
  tearDown(() async => dir.delete(recursive: true));

  test('defaults when no file exists', () async {
    final s = await SettingsStore(dir).load();
    expect(s.host, '');
    expect(s.grpcPort, 50051);
    expect(s.httpPort, 8000);
    expect(s.isComplete, isFalse);
  });

  test('round-trips through the JSON file', () async {
    final store = SettingsStore(dir);
    const saved = AppSettings(
      host: '10.0.0.2',
      grpcPort: 6000,
      httpPort: 9000,
      useTls: true,
      token: 'mt_t',
      project: 'flowers',
      preferRest: true,
      downscaleUploads: false,
      modelFormat: ModelFormat.int8,
    );
    await store.save(saved);
    final loaded = await store.load();
    expect(loaded.toJson(), saved.toJson());
  });

  test('a damaged file gives defaults', () async {
    await File('${dir.path}/settings.json').writeAsString('{oops');
    final s = await SettingsStore(dir).load();
    expect(s.toJson(), const AppSettings().toJson());
  });

  test('merge keeps fields the payload lacks', () {
    const s = AppSettings(host: 'old', grpcPort: 7000, token: 'mt_old', project: 'p');
    final merged = s.merge(const ConnectionPayload(host: 'new', httpPort: 8080, token: 'mt_new'));
    expect(merged.host, 'new');
    expect(merged.httpPort, 8080);
    expect(merged.grpcPort, 7000);
    expect(merged.token, 'mt_new');
    expect(merged.project, 'p');
  });
}
