import 'dart:convert';
import 'dart:io';
import 'dart:typed_data';

import 'package:crypto/crypto.dart';
import 'package:http/http.dart' as http;
import 'package:http/testing.dart';
import 'package:mobiletrain_client/src/errors.dart';
import 'package:mobiletrain_client/src/federated.dart';
import 'package:mobiletrain_client/src/on_device_training.dart';
import 'package:mobiletrain_client/src/settings.dart';
import 'package:flutter_test/flutter_test.dart';

/// A golden fixture (test/fixtures/rest/<name>.json), checked against the
/// real server by tests/unit/clients/test_dart_rest_fixtures.py.
Map<String, Object?> fixture(String name) =>
    jsonDecode(File('test/fixtures/rest/$name.json').readAsStringSync()) as Map<String, Object?>;

const _values = <String, Object>{
  'project': 'flowers',
  'device_id': 'dev-1',
  'session_id': 'sess-1',
  'round': 1,
  'weights': 'AAAAPw==',
};

/// The fixture's request with its `{placeholders}` filled in.
Object? fill(Object? template) => switch (template) {
      final String s when RegExp(r'^\{(\w+)\}$').hasMatch(s) => _values[s.substring(1, s.length - 1)],
      final String s => s.replaceAllMapped(RegExp(r'\{(\w+)\}'), (m) => '${_values[m[1]]}'),
      final Map<String, Object?> m => {for (final e in m.entries) e.key: fill(e.value)},
      final List<Object?> l => [for (final v in l) fill(v)],
      _ => template,
    };

/// Checks that [request] is what fixture [name] describes.
void expectRequest(http.Request request, String name) {
  final want = fixture(name)['request']! as Map<String, Object?>;
  expect(request.method, want['method']);
  expect(request.url.path, fill(want['path']));
  expect(request.url.queryParameters, fill(want['query']));
  final headers = want['headers']! as Map<String, Object?>;
  for (final h in headers.entries) {
    expect(request.headers[h.key]?.split(';').first, h.value, reason: 'header ${h.key}');
  }
  expect(request.headers['Authorization'], 'Bearer mt_device');
  if (want['json'] != null) {
    expect(jsonDecode(request.body), fill(want['json']));
  }
}

const _head = HeadSpec(featureDim: 3, numClasses: 2, hidden: [], batchSize: 4);

Map<String, Object?> _session() => {
      'id': 'sess-1',
      'project_id': 'p1',
      'job_id': 'job-1',
      'state': 'running',
      'config': {'rounds': 3},
      'labels': ['a', 'b'],
      'current_round': 0,
      'model_version': null,
      'held_out_accuracy': null,
      'files': [
        {'format': 'train-step', 'sha256': sha256.convert([1, 2, 3]).toString(), 'size': 3, 'download_url': '/x'},
      ],
      'ondevice': {
        'head': _head.toJson(),
        'input': {'width': 8, 'height': 8, 'color_mode': 'grayscale', 'normalization': 'zero-one'},
      },
      'created_at': '2026-01-01T00:00:00Z',
      'finished_at': null,
      'error': '',
    };

http.Response _json(Object body, [int status = 200]) =>
    http.Response(jsonEncode(body), status, headers: {'content-type': 'application/json'});

void main() {
  const settings = ConnectionSettings(host: 'server', token: 'mt_device', retry: RetryPolicy.none);

  test('register, task and update follow the golden fixtures', () async {
    final weights = HeadWeights(_head, [Float32List.fromList([1, 2, 3, 4, 5, 6]), Float32List.fromList([0, 1])]);
    final client = MockClient((request) async {
      switch (request.url.path) {
        case '/v1/projects/flowers/federated/devices':
          expectRequest(request, 'federated_register_device');
          return _json({'device_id': 'dev-1', 'session': _session()}, 201);
        case '/v1/projects/flowers/federated/task':
          expectRequest(request, 'federated_get_task');
          return _json({
            'status': 'task',
            'session_id': 'sess-1',
            'message': '',
            'retry_after_seconds': 0.0,
            'task': {
              'session_id': 'sess-1',
              'round': 1,
              'rounds': 3,
              'deadline': '2026-01-01T00:01:00Z',
              'tensors': [
                {'name': 'dense0_kernel', 'shape': [3, 2]},
                {'name': 'dense0_bias', 'shape': [2]},
              ],
              'weights': base64Encode(weights.toBytes()),
              'learning_rate': 0.05,
              'local_epochs': 2,
              'batch_size': 4,
              'mu': 0.0,
              'labels': ['a', 'b'],
              'model_version': null,
            },
          });
        case '/v1/projects/flowers/federated/updates':
          final body = jsonDecode(request.body) as Map<String, Object?>;
          final want = (fixture('federated_push_update')['request']! as Map<String, Object?>)['json']! as Map<String, Object?>;
          expect(body.keys.toSet(), want.keys.toSet());
          expect(body['weights'], base64Encode(weights.toBytes()));
          expect(body['round'], 1);
          expect(body['dtype'], 'float32');
          return _json({'accepted': true, 'round': 1, 'reason': '', 'message': ''});
      }
      return http.Response('not found', 404);
    });
    final device = FederatedParticipant(settings, project: 'flowers', httpClient: client);
    final session = await device.register(info: {'platform': 'dart'});
    expect(device.deviceId, 'dev-1');
    expect(session.isReady, isTrue);
    expect(session.onDeviceSpec.head.featureDim, 3);
    expect(session.onDeviceSpec.input!.width, 8);

    final task = await device.getTask();
    expect(task.status, FederatedTaskStatus.task);
    expect(task.round, 1);
    expect(task.localEpochs, 2);
    expect(task.tensors.first.$1, 'dense0_kernel');
    expect(task.tensors.first.$2, [3, 2]);
    expect(HeadWeights.fromBytes(task.weights!, _head).tensors[0], weights.tensors[0]);

    final result = await device.pushUpdate(task, weights.toBytes(), numSamples: 10, metrics: {'loss': 0.5});
    expect(result.accepted, isTrue);
  });

  test('the same request as the fixture for the update', () async {
    late http.Request seen;
    final client = MockClient((request) async {
      seen = request;
      return _json({'accepted': false, 'round': 1, 'reason': 'stale-round', 'message': 'closed'});
    });
    final device = FederatedParticipant(settings, project: 'flowers', httpClient: client)..deviceId = 'dev-1';
    const task = FederatedTask(status: FederatedTaskStatus.task, sessionId: 'sess-1', round: 1);
    final result = await device.pushUpdate(task, base64Decode('AAAAPw=='), numSamples: 10, metrics: {'loss': 0.5});
    expectRequest(seen, 'federated_push_update');
    expect(result.accepted, isFalse);
    expect(result.reason, 'stale-round');
  });

  test('no running session is a catalog error', () async {
    final client = MockClient((request) async => http.Response(
          jsonEncode({'code': 91, 'error': 'no_active_session', 'message': 'no session'}),
          409,
          headers: {'content-type': 'application/json', 'x-mobiletrain-error-code': '91'},
        ));
    final device = FederatedParticipant(settings, project: 'flowers', httpClient: client);
    await expectLater(
      device.register(),
      throwsA(isA<MobiletrainException>().having((e) => e.code, 'code', ErrorCodes.noActiveSession)),
    );
  });

  test('session files are checked against their sha256', () async {
    var body = <int>[1, 2, 3];
    final client = MockClient((request) async {
      if (request.url.path.endsWith('/devices')) return _json({'device_id': 'dev-1', 'session': _session()}, 201);
      expectRequest(request, 'federated_download_file');
      return http.Response.bytes(body, 200, headers: {
        'content-type': 'application/octet-stream',
        'x-content-sha256': sha256.convert([1, 2, 3]).toString(),
      });
    });
    final device = FederatedParticipant(settings, project: 'flowers', httpClient: client);
    await device.register();
    expect(await device.downloadFile('train-step'), [1, 2, 3]);
    body = [1, 2, 4];
    await expectLater(
      device.downloadFile('train-step'),
      throwsA(isA<MobiletrainException>().having((e) => e.code, 'code', ErrorCodes.dataLoss)),
    );
  });
}
