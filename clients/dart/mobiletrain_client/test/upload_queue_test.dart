import 'dart:convert';
import 'dart:io';

import 'package:mobiletrain_client/src/client.dart';
import 'package:mobiletrain_client/src/errors.dart';
import 'package:mobiletrain_client/src/ids.dart';
import 'package:mobiletrain_client/src/models.dart';
import 'package:mobiletrain_client/src/settings.dart';
import 'package:mobiletrain_client/src/transport.dart';
import 'package:mobiletrain_client/src/upload_queue.dart';
import 'package:flutter_test/flutter_test.dart';

/// A server stand-in that stores samples by client id, like the real one.
class FakeServer implements MobiletrainTransport {
  /// Client id → label of every stored sample.
  final stored = <String, String>{};

  /// Labels outside this set are rejected (code 22), like a fixed label set.
  Set<String> labels = {'rose', 'tulip'};

  /// Failures to throw before answering, one per call, in order.
  final failures = <MobiletrainException>[];

  /// When true, the next call stores the samples and then loses the answer.
  bool dropAnswerOnce = false;

  /// The client ids of every upload call.
  final calls = <List<String>>[];

  @override
  Future<List<SampleResult>> uploadSamples(String project, List<SampleUpload> samples) async {
    calls.add([for (final s in samples) s.clientId]);
    if (failures.isNotEmpty) throw failures.removeAt(0);
    final results = [
      for (final s in samples)
        if (!labels.contains(s.label))
          SampleResult(
            clientId: s.clientId,
            status: SampleStatus.rejected,
            errorCode: ErrorCodes.unknownLabel,
            errorName: 'unknown_label',
            message: 'label ${s.label} is not in the label set',
          )
        else if (stored.containsKey(s.clientId))
          SampleResult(clientId: s.clientId, status: SampleStatus.duplicate, sampleId: s.clientId)
        else
          SampleResult(clientId: s.clientId, status: SampleStatus.accepted, sampleId: s.clientId),
    ];
    for (final s in samples) {
      if (labels.contains(s.label)) stored[s.clientId] = s.label;
    }
    if (dropAnswerOnce) {
      dropAnswerOnce = false;
      throw MobiletrainException.of(ErrorCodes.network, 'connection reset');
    }
    return results;
  }

  @override
  dynamic noSuchMethod(Invocation invocation) => throw UnimplementedError();
}

const _noWait = RetryPolicy(maxAttempts: 3, initialDelay: Duration.zero, maxDelay: Duration.zero);

void main() {
  late Directory dir;
  late FakeServer server;
  late MobiletrainClient client;

  setUp(() async {
    dir = await Directory.systemTemp.createTemp('upload-queue-test');
    server = FakeServer();
    client = MobiletrainClient(const ConnectionSettings(host: 'server', retry: _noWait),
        transport: server);
  });

  tearDown(() async {
    await dir.delete(recursive: true);
  });

  Future<UploadQueue> open({int maxBatchSamples = 32}) =>
      UploadQueue.open(client, directory: dir, project: 'flowers', maxBatchSamples: maxBatchSamples);

  Map<String, Object?> journal() =>
      jsonDecode(File('${dir.path}/${UploadQueue.journalName}').readAsStringSync())
          as Map<String, Object?>;

  List<File> sampleFiles() =>
      Directory('${dir.path}/samples').listSync().whereType<File>().toList();

  test('newClientId makes distinct UUID v4 strings', () {
    final ids = {for (var i = 0; i < 100; i++) newClientId()};
    expect(ids, hasLength(100));
    final uuid4 = RegExp(r'^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$');
    expect(ids.every(uuid4.hasMatch), isTrue);
  });

  test('add persists the sample before returning; bytes live in their own file', () async {
    final queue = await open();
    final id = await queue.add([1, 2, 3, 4], label: 'rose');
    final entries = journal()['pending']! as List<Object?>;
    expect(entries, hasLength(1));
    final entry = entries.single! as Map<String, Object?>;
    expect(entry['client_id'], id);
    expect(entry['label'], 'rose');
    expect(entry['attempts'], 0);
    expect(entry.containsKey('bytes'), isFalse);
    expect(sampleFiles().single.readAsBytesSync(), [1, 2, 3, 4]);
    expect(queue.current.pending, 1);
    await queue.close();
  });

  test('the queue survives a restart and sends what was left', () async {
    final first = await open();
    final a = await first.add([1], label: 'rose');
    final b = await first.add([2], label: 'tulip');
    await first.close(); // the app is killed before any upload

    final second = await open();
    expect(second.pending.map((s) => s.clientId), [a, b]);
    final progress = await second.flush();
    expect(progress.pending, 0);
    expect(progress.sent, 2);
    expect(server.stored, {a: 'rose', b: 'tulip'});
    expect(sampleFiles(), isEmpty);
    expect(journal()['pending'], isEmpty);
    await second.close();
  });

  test('rejected samples move to failed with their error; accepted ones leave', () async {
    final queue = await open();
    final updates = <UploadProgress>[];
    final sub = queue.progress.listen(updates.add);
    await queue.add([1], label: 'rose');
    final daisy = await queue.add([2], label: 'daisy');
    final progress = await queue.flush();
    await Future<void>.delayed(Duration.zero); // let the broadcast stream deliver
    expect(progress.sent, 1);
    expect(progress.failed, 1);
    expect(queue.failed.single.clientId, daisy);
    expect(queue.failed.single.errorCode, ErrorCodes.unknownLabel);
    expect(queue.failed.single.errorName, 'unknown_label');
    expect(await queue.bytesOf(daisy), [2]);
    expect(updates.last.pending, 0);
    expect(updates.map((u) => u.pending), containsAllInOrder([1, 2, 0]));

    // The app fixes the cause (say, adds the label) and retries.
    server.labels.add('daisy');
    await queue.retryFailed();
    expect(queue.pending.single.clientId, daisy);
    final again = await queue.flush();
    expect(again.failed, 0);
    expect(again.sent, 2);
    await sub.cancel();
    await queue.close();
  });

  test('discardFailed deletes the samples and their files', () async {
    final queue = await open();
    await queue.add([9], label: 'daisy');
    await queue.flush();
    expect(sampleFiles(), hasLength(1));
    await queue.discardFailed();
    expect(queue.failed, isEmpty);
    expect(sampleFiles(), isEmpty);
    await queue.close();
  });

  test('transient failures are retried with backoff and counted on the sample', () async {
    final queue = await open();
    final id = await queue.add([1], label: 'rose');
    server.failures.addAll([
      MobiletrainException.of(ErrorCodes.network, 'offline'),
      MobiletrainException.of(ErrorCodes.rateLimited, 'slow down'),
    ]);
    final progress = await queue.flush();
    expect(server.calls, hasLength(3));
    expect(progress.sent, 1);
    expect(server.stored.keys, [id]);
    await queue.close();
  });

  test('after maxAttempts transient failures flush throws and the samples stay', () async {
    final queue = await open();
    await queue.add([1], label: 'rose');
    server.failures.addAll(List.generate(5, (_) => MobiletrainException.of(ErrorCodes.network, 'offline')));
    await expectLater(queue.flush(), throwsA(isA<MobiletrainException>()));
    expect(server.calls, hasLength(_noWait.maxAttempts));
    expect(queue.pending.single.attempts, _noWait.maxAttempts);
    expect(queue.pending.single.lastError, 'offline');
    final saved = (journal()['pending']! as List<Object?>).single! as Map<String, Object?>;
    expect(saved['attempts'], _noWait.maxAttempts);
    await queue.close();
  });

  test('a permanent failure of the call stops the flush at once', () async {
    final queue = await open();
    await queue.add([1], label: 'rose');
    server.failures.add(MobiletrainException.of(ErrorCodes.unauthenticated, 'bad token'));
    await expectLater(
        queue.flush(), throwsA(isA<MobiletrainException>().having((e) => e.code, 'code', 60)));
    expect(server.calls, hasLength(1));
    expect(queue.pending, hasLength(1));
    expect(queue.failed, isEmpty);
    await queue.close();
  });

  test('a lost answer is resent and comes back duplicate: stored exactly once', () async {
    final queue = await open();
    final id = await queue.add([1], label: 'rose');
    server.dropAnswerOnce = true; // stored on the server, but the reply never arrives
    final progress = await queue.flush();
    expect(server.calls, [
      [id],
      [id],
    ]);
    expect(server.stored.keys, [id]);
    expect(progress.sent, 1);
    expect(progress.pending, 0);
    await queue.close();
  });

  test('samples go in batches of at most maxBatchSamples', () async {
    final queue = await open(maxBatchSamples: 2);
    for (var i = 0; i < 5; i++) {
      await queue.add([i], label: 'rose');
    }
    await queue.flush();
    expect(server.calls.map((c) => c.length), [2, 2, 1]);
    await queue.close();
  });

  test('adding the same client id twice queues it once', () async {
    final queue = await open();
    await queue.add([1], label: 'rose', clientId: 'photo-1');
    await queue.add([1], label: 'rose', clientId: 'photo-1');
    expect(queue.pending, hasLength(1));
    await queue.close();
  });

  test('files left by a crash before the journal was written are cleaned up', () async {
    final queue = await open();
    await queue.add([1], label: 'rose');
    await queue.close();
    File('${dir.path}/samples/orphan.bin').writeAsBytesSync([7]);
    File('${dir.path}/samples/half-written.bin.tmp').writeAsBytesSync([8]);
    final reopened = await open();
    expect(sampleFiles(), hasLength(1));
    expect(reopened.pending, hasLength(1));
    await reopened.close();
  });

  test('a directory holds the queue of one project only', () async {
    final queue = await open();
    await queue.add([1], label: 'rose');
    await queue.close();
    await expectLater(
        UploadQueue.open(client, directory: dir, project: 'other'), throwsA(isA<ArgumentError>()));
  });
}
