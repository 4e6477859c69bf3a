import 'dart:io';
import 'dart:typed_data';

import 'package:crypto/crypto.dart';
import 'package:mobiletrain_client/src/errors.dart';
import 'package:mobiletrain_client/src/model_manager.dart';
import 'package:mobiletrain_client/src/models.dart';
import 'package:mobiletrain_client/src/settings.dart';
import 'package:mobiletrain_client/src/transport.dart';
import 'package:flutter_test/flutter_test.dart';

const _spec = InputSpec(
  width: 8,
  height: 8,
  colorMode: ColorMode.grayscale,
  normalization: Normalization.zeroOne,
  channels: 1,
  scale: 1 / 255,
  offset: 0,
);

/// Serves model files from memory and can drop the connection or corrupt bytes.
class FakeTransport implements MobiletrainTransport {
  final Map<int, Uint8List> files = {};
  int promoted = 0;
  int chunkSize = 64;

  /// Drop the stream once after this many bytes of one call (null: never).
  int? failOnceAfter;

  /// Flip a byte in everything sent.
  bool corrupt = false;

  final List<int> requestedOffsets = [];
  int checks = 0;

  void publish(int version, int size) {
    files[version] = Uint8List.fromList(List.generate(size, (i) => (i * 7 + version) % 256));
    promoted = version;
  }

  String shaOf(int version) => sha256.convert(files[version]!).toString();

  Artifact _artifact(int version) =>
      Artifact(format: ModelFormat.float32, size: files[version]!.length, sha256: shaOf(version));

  @override
  Future<UpdateCheck> checkForUpdate(
    String project, {
    required ModelFormat format,
    String currentSha256 = '',
    int currentVersion = 0,
  }) async {
    checks++;
    final artifact = _artifact(promoted);
    return UpdateCheck(
      notModified: currentSha256 == artifact.sha256,
      latest: ModelVersion(
        projectId: 'p1',
        version: promoted,
        jobId: 'job',
        current: true,
        accuracy: 0.9,
        artifacts: [artifact],
      ),
      artifact: artifact,
    );
  }

  @override
  Future<Manifest> getManifest(String project, {int version = 0}) async {
    final v = version == 0 ? promoted : version;
    return Manifest(
      projectId: 'p1',
      version: v,
      labels: const ['cat', 'dog'],
      inputSpec: _spec,
      artifacts: [_artifact(v)],
      json: {
        'labels': const ['cat', 'dog'],
        'formats': {
          'float32': {'file': 'model-float32.tflite'},
        },
      },
    );
  }

  @override
  Stream<ModelBytes> downloadModel(
    String project, {
    required int version,
    required ModelFormat format,
    int offset = 0,
  }) async* {
    requestedOffsets.add(offset);
    final data = files[version]!;
    final info = ModelFileInfo(
      version: version,
      format: format,
      size: data.length,
      sha256: shaOf(version),
      fileName: 'model-float32.tflite',
    );
    var sent = 0;
    for (var start = offset; start < data.length; start += chunkSize) {
      final limit = failOnceAfter;
      if (limit != null && sent >= limit) {
        failOnceAfter = null;
        throw MobiletrainException.of(ErrorCodes.network, 'connection lost');
      }
      final end = start + chunkSize < data.length ? start + chunkSize : data.length;
      final chunk = Uint8List.fromList(data.sublist(start, end));
      if (corrupt && start == 0) chunk[0] ^= 0xFF;
      sent += chunk.length;
      yield ModelBytes(info: info, offset: start, data: chunk);
    }
  }

  @override
  dynamic noSuchMethod(Invocation invocation) => throw UnimplementedError('${invocation.memberName}');
}

const _fastRetry = RetryPolicy(maxAttempts: 3, initialDelay: Duration.zero, jitter: 0);

void main() {
  late Directory dir;
  late FakeTransport server;

  ModelManager manager({RetryPolicy retry = _fastRetry}) =>
      ModelManager(server, cacheDir: dir, project: 'flowers', retry: retry);

  Directory modelDir() => Directory('${dir.path}/flowers/float32');

  List<String> names() => modelDir()
      .listSync()
      .map((e) => e.uri.pathSegments.where((s) => s.isNotEmpty).last)
      .toList()
    ..sort();

  setUp(() async {
    dir = await Directory.systemTemp.createTemp('mobiletrain_models_');
    server = FakeTransport()..publish(1, 1000);
  });

  tearDown(() async {
    await dir.delete(recursive: true);
  });

  test('installs the current model, checked, with a pointer', () async {
    final progress = <int>[];
    final installed = await manager().update(onProgress: (got, total) {
      expect(total, 1000);
      progress.add(got);
    });
    expect(installed.version, 1);
    expect(installed.sha256, server.shaOf(1));
    expect(installed.format, ModelFormat.float32);
    expect(installed.manifest.labels, ['cat', 'dog']);
    expect(await installed.file.readAsBytes(), server.files[1]);
    expect(progress.last, 1000);
    expect(names(), ['current.json', 'v1-${server.shaOf(1)}.tflite']);

    // A fresh manager (an app restart) finds it through the pointer.
    final again = await manager().current();
    expect(again, isNotNull);
    expect(again!.version, 1);
    expect(again.manifest.inputSpec.width, 8);
    expect(again.manifest.json['labels'], ['cat', 'dog']);
  });

  test('does not download again when the server says not modified', () async {
    await manager().update();
    final installed = await manager().update();
    expect(installed.version, 1);
    expect(server.requestedOffsets, [0]);
  });

  test('resumes from the last byte after an error mid-stream', () async {
    server.failOnceAfter = 128;
    final installed = await manager().update();
    expect(server.requestedOffsets, [0, 128]);
    expect(await installed.file.readAsBytes(), server.files[1]);
  });

  test('resumes a partial download after a restart', () async {
    server.failOnceAfter = 192;
    await expectLater(
      manager(retry: RetryPolicy.none).update(),
      throwsA(isA<MobiletrainException>().having((e) => e.code, 'code', ErrorCodes.network)),
    );
    // The partial file names the sha256 it must end up with.
    final part = File('${modelDir().path}/v1-${server.shaOf(1)}.tflite.part');
    expect(await part.length(), 192);
    expect(await manager().current(), isNull);

    final installed = await manager().update();
    expect(server.requestedOffsets, [0, 192]);
    expect(await installed.file.readAsBytes(), server.files[1]);
    expect(await part.exists(), isFalse);
  });

  test('discards a download whose sha256 does not match', () async {
    server.corrupt = true;
    await expectLater(
      manager().update(),
      throwsA(isA<MobiletrainException>().having((e) => e.code, 'code', ErrorCodes.dataLoss)),
    );
    expect(names(), isEmpty);
    expect(await manager().current(), isNull);
  });

  test('keeps the old model until the new one is complete, then switches', () async {
    final v1 = await manager().update();
    server
      ..publish(2, 700)
      ..failOnceAfter = 64;
    await expectLater(manager(retry: RetryPolicy.none).update(), throwsA(isA<MobiletrainException>()));
    final still = await manager().current();
    expect(still!.version, 1);
    expect(await still.file.readAsBytes(), server.files[1]);

    final v2 = await manager().update();
    expect(v2.version, 2);
    expect((await manager().current())!.version, 2);
    expect((await manager().previous())!.version, 1);
    expect(await v1.file.exists(), isTrue, reason: 'the previous model stays for a rollback');

    server.publish(3, 300);
    final v3 = await manager().update();
    expect(v3.version, 3);
    expect(await v1.file.exists(), isFalse, reason: 'older than previous: pruned');
    expect(names(), [
      'current.json',
      'v2-${server.shaOf(2)}.tflite',
      'v3-${server.shaOf(3)}.tflite',
    ]);
  });

  test('rolls back to the previous model', () async {
    await manager().update();
    server.publish(2, 500);
    await manager().update();
    final back = await manager().rollback();
    expect(back.version, 1);
    expect((await manager().current())!.version, 1);
    expect((await manager().previous())!.version, 2);
  });

  test('concurrent updates share one download', () async {
    final m = manager();
    final results = await Future.wait([m.update(), m.update()]);
    expect(results[0].file.path, results[1].file.path);
    expect(server.requestedOffsets, [0]);
    expect(server.checks, 1);
  });
}
