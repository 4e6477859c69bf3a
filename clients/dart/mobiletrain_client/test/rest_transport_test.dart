// Replays the golden REST fixtures (test/fixtures/rest/*.json) against
// RestTransport with a mock HTTP client: each request the transport makes must
// be the fixture's request, and the fixture's response must parse into the
// expected domain values. tests/unit/clients/test_dart_rest_fixtures.py sends
// the same requests to a real server, so both ends follow one contract.
import 'dart:convert';
import 'dart:io';

import 'package:http/http.dart' as http;
import 'package:http/testing.dart';
import 'package:mobiletrain_client/src/client.dart';
import 'package:mobiletrain_client/src/errors.dart';
import 'package:mobiletrain_client/src/models.dart';
import 'package:mobiletrain_client/src/rest/rest_transport.dart';
import 'package:mobiletrain_client/src/settings.dart';
import 'package:flutter_test/flutter_test.dart';

const _sha = '5d41402abc4b2a76b9719d911017c592aaf09e5e0a4f1bd2fa9c5e0d3f1a2b3c';
const _size = 2048;

/// What the placeholders of the fixtures stand for in these tests.
const _values = <String, Object>{
  'project': 'flowers',
  'project_id': 'p-123',
  'missing_project': 'no-such-project',
  'job_id': 'job-1',
  'version': 3,
  'sha256': _sha,
  'float32_size': _size,
  'range_start': 100,
  'final_seq': 14,
};

/// Stand-ins for the response type tokens.
const _tokens = <String, Object?>{
  'int': 7,
  'float': 0.5,
  'str': 'text',
  'bool': true,
  'sha256': 'cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc',
  'datetime': '2026-01-02T03:04:05.000Z',
  'any': null,
};

final _placeholder = RegExp(r'\{([a-z_][a-z0-9_]*)\}');
final _token = RegExp(r'<(int|float|str|bool|sha256|datetime|any|bytes)\??>');

Map<String, Object?> fixture(String name) =>
    jsonDecode(File('test/fixtures/rest/$name.json').readAsStringSync()) as Map<String, Object?>;

Map<String, Object?> _part(String name, String part) =>
    fixture(name)[part]! as Map<String, Object?>;

/// [template] with placeholders filled (a whole-string one keeps its type); in
/// responses the type tokens become sample values.
Object? fill(Object? template, {bool response = false}) => switch (template) {
      final String s when _placeholder.hasMatch(s) && _placeholder.stringMatch(s) == s =>
        _values[s.substring(1, s.length - 1)] ?? s,
      final String s when response && _token.hasMatch(s) && _token.stringMatch(s) == s =>
        _tokens[_token.firstMatch(s)![1]],
      final String s => s
          .replaceAllMapped(_placeholder, (m) => '${_values[m[1]] ?? m[0]}')
          .replaceAllMapped(_token, (m) => response ? '${_tokens[m[1]]}' : m[0]!),
      final Map<String, Object?> m => {
          for (final e in m.entries) e.key: fill(e.value, response: response),
        },
      final List<Object?> l => [for (final v in l) fill(v, response: response)],
      _ => template,
    };

/// True when [actual] fits the request template [want] (unknown placeholders
/// such as `{image_b64}` accept any string; the test checks those itself).
bool _fits(Object? want, Object? actual) => switch (want) {
      final String s when _placeholder.stringMatch(s) == s && !_values.containsKey(s.substring(1, s.length - 1)) =>
        actual is String,
      final Map<String, Object?> m => actual is Map<String, Object?> &&
          actual.length == m.length &&
          m.entries.every((e) => actual.containsKey(e.key) && _fits(e.value, actual[e.key])),
      final List<Object?> l => actual is List<Object?> &&
          actual.length == l.length &&
          [for (var i = 0; i < l.length; i++) _fits(l[i], actual[i])].every((ok) => ok),
      _ => fill(want) == actual,
    };

/// Checks that [request] is the request of fixture [name].
void expectRequest(http.Request request, String name) {
  final want = _part(name, 'request');
  expect(request.method, want['method'], reason: '$name: method');
  expect(request.url.path, fill(want['path']), reason: '$name: path');
  expect(request.url.queryParameters, fill(want['query'] ?? const <String, Object?>{}),
      reason: '$name: query');
  for (final MapEntry(:key, :value) in (want['headers']! as Map<String, Object?>).entries) {
    expect(request.headers[key], '${fill(value)}', reason: '$name: header $key');
  }
  expect(request.headers['Authorization'], 'Bearer mt_test', reason: '$name: token');
  final body = want['json'];
  if (body == null) {
    expect(request.bodyBytes, isEmpty, reason: '$name: no body');
  } else {
    final sent = jsonDecode(request.body);
    expect(_fits(body, sent), isTrue, reason: '$name: body $sent does not fit $body');
  }
}

/// The fixture's response with sample values; [bytes] is the body of a binary
/// response, [sse] overrides how the event stream is written.
http.Response fixtureResponse(String name, {List<int>? bytes, Map<String, String>? headers}) {
  final want = _part(name, 'response');
  final status = want['status']! as int;
  final filled = {
    for (final MapEntry(:key, :value) in (want['headers']! as Map<String, Object?>).entries)
      key.toLowerCase(): '${fill(value, response: true)}',
    ...?headers,
  };
  if (want['sse'] case final List<Object?> events) {
    return http.Response(_sseText(events), status, headers: filled);
  }
  if (want['json'] case final Object json) {
    return http.Response.bytes(utf8.encode(jsonEncode(fill(json, response: true))), status,
        headers: filled);
  }
  return http.Response.bytes(bytes ?? const [], status, headers: filled);
}

/// An SSE stream of the fixture's event templates, seq 1, 2, ... in order,
/// opening with `retry:` and with a keep-alive comment, like the server.
String _sseText(List<Object?> templates) {
  final out = StringBuffer('retry: 3000\n\n');
  for (final (i, template) in templates.indexed) {
    final event = fill(template, response: true)! as Map<String, Object?>;
    final data = {...event['data']! as Map<String, Object?>, 'seq': i + 1};
    out
      ..write('id: ${i + 1}\n')
      ..write('event: ${event['event']}\n')
      ..write('data: ${jsonEncode(data)}\n\n');
    if (i == 1) out.write(': keep-alive\n\n');
  }
  return out.toString();
}

const _settings = ConnectionSettings(host: 'server', httpPort: 8000, token: 'mt_test');

/// A transport whose HTTP client checks every request against fixture [name]
/// and answers with its response.
RestTransport replay(String name, {List<int>? bytes, Map<String, String>? headers}) =>
    RestTransport(_settings, httpClient: MockClient((request) async {
      expectRequest(request, name);
      return fixtureResponse(name, bytes: bytes, headers: headers);
    }));

Matcher _failsWith(int code, String name) => throwsA(isA<MobiletrainException>()
    .having((e) => e.code, 'code', code)
    .having((e) => e.name, 'name', name)
    .having((e) => e.retryable, 'retryable', isFalse));

/// The fixtures this file replays (those of RestTransport; the federated_*
/// ones belong to federated_test.dart).
const _transportFixtures = {
  'get_project',
  'get_project_not_found',
  'upload_samples',
  'start_job',
  'start_job_not_enough_data',
  'get_job',
  'cancel_job',
  'watch_job',
  'watch_job_after_end',
  'list_model_versions',
  'get_manifest',
  'check_update',
  'check_update_current',
  'download_model',
  'download_model_resume',
  'download_model_at_end',
  'predict',
};

void main() {
  test('every transport fixture on disk is replayed here', () {
    final onDisk = {
      for (final f in Directory('test/fixtures/rest').listSync())
        if (f.path.endsWith('.json') && !f.uri.pathSegments.last.startsWith('federated_'))
          f.uri.pathSegments.last.replaceAll('.json', ''),
    };
    expect(onDisk, _transportFixtures);
  });

  group('projects and samples', () {
    test('get_project', () async {
      final project = await replay('get_project').getProject('flowers');
      expect(project.id, 'p-123');
      expect(project.name, 'flowers');
      expect(project.labels, ['rose', 'tulip']);
      expect(project.labelsFixed, isTrue);
      expect(project.inputSpec.width, 32);
      expect(project.inputSpec.colorMode, ColorMode.rgb);
      expect(project.inputSpec.normalization, Normalization.zeroOne);
      expect(project.inputSpec.channels, 3);
      expect(project.promotedVersion, 0);
    });

    test('get_project_not_found', () async {
      final transport = replay('get_project_not_found');
      await expectLater(transport.getProject('no-such-project'), _failsWith(10, 'project_not_found'));
    });

    test('upload_samples', () async {
      late List<Object?> sent;
      final transport = RestTransport(_settings, httpClient: MockClient((request) async {
        expectRequest(request, 'upload_samples');
        sent = jsonDecode(request.body) as List<Object?>;
        return fixtureResponse('upload_samples');
      }));
      final results = await transport.uploadSamples('flowers', const [
        SampleUpload(clientId: 'id-rose', label: 'rose', bytes: [1, 2, 3]),
        SampleUpload(clientId: 'id-daisy', label: 'daisy', bytes: [4, 5]),
      ]);
      expect(sent, [
        {'image': base64Encode([1, 2, 3]), 'label': 'rose', 'client_id': 'id-rose'},
        {'image': base64Encode([4, 5]), 'label': 'daisy', 'client_id': 'id-daisy'},
      ]);
      expect(results.map((r) => r.status), [SampleStatus.accepted, SampleStatus.rejected]);
      expect(results[0].sampleId, isNotEmpty);
      expect(results[1].errorCode, 22);
      expect(results[1].errorName, 'unknown_label');
    });

    test('large uploads are split into several requests', () async {
      var requests = 0;
      final transport = RestTransport(
        _settings,
        maxRequestBytes: 1000,
        httpClient: MockClient((request) async {
          requests++;
          final items = jsonDecode(request.body) as List<Object?>;
          return http.Response(
              jsonEncode({
                'results': [
                  for (final (i, item) in items.indexed)
                    {
                      'index': i,
                      'filename': null,
                      'client_id': (item! as Map<String, Object?>)['client_id'],
                      'status': 'duplicate',
                      'sample_id': 's',
                      'error_code': null,
                      'error': null,
                      'reason': '',
                    },
                ],
              }),
              200,
              headers: {'content-type': 'application/json'});
        }),
      );
      final samples = [
        for (var i = 0; i < 5; i++)
          SampleUpload(clientId: 'c$i', label: 'rose', bytes: List.filled(400, i)),
      ];
      final results = await transport.uploadSamples('flowers', samples);
      expect(requests, greaterThan(1));
      expect(results.map((r) => r.clientId), ['c0', 'c1', 'c2', 'c3', 'c4']);
    });
  });

  group('jobs', () {
    test('start_job', () async {
      final job = await replay('start_job').startJob(
          'flowers', const TrainingOptions(epochs: 1, batchSize: 4, formats: [ModelFormat.float32]));
      expect(job.state, JobState.queued);
      expect(job.projectId, 'p-123');
      expect(job.createdAt, DateTime.utc(2026, 1, 2, 3, 4, 5));
      expect(job.finishedAt, isNull);
    });

    test('start_job_not_enough_data', () async {
      await expectLater(replay('start_job_not_enough_data').startJob('flowers', const TrainingOptions()),
          _failsWith(42, 'not_enough_data'));
    });

    test('get_job', () async {
      final job = await replay('get_job').getJob('job-1');
      expect(job.id, 'job-1');
      expect(job.state, JobState.running);
      expect(job.cancelRequested, isFalse);
    });

    test('cancel_job', () async {
      final job = await replay('cancel_job').cancelJob('job-1');
      expect(job.state, JobState.running);
      expect(job.cancelRequested, isTrue);
    });

    test('watch_job', () async {
      final events = await replay('watch_job').watchJob('job-1').toList();
      final kinds = [for (final t in _part('watch_job', 'response')['sse']! as List<Object?>)
          (t! as Map<String, Object?>)['event']];
      expect(events.map((e) => e.kind.wireName), kinds);
      expect(events.map((e) => e.seq), [for (var i = 1; i <= kinds.length; i++) i]);
      expect(events.first.state, JobState.queued);
      final progress = events.firstWhere((e) => e.kind == EventKind.progress).progress!;
      expect(progress.samplesPerSecond, 0.5);
      expect(progress.phase, 'preparing data');
      final training = events.lastWhere((e) => e.kind == EventKind.progress).progress!;
      expect(training.phase, 'training');
      final epoch = events.firstWhere((e) => e.kind == EventKind.epoch).epoch!;
      expect(epoch.valAccuracy, 0.5);
      final evaluation = events.firstWhere((e) => e.kind == EventKind.evaluation).evaluation!;
      expect(evaluation.labels, ['rose', 'tulip']);
      expect(evaluation.confusionMatrix, [
        [7, 7],
        [7, 7],
      ]);
      expect(evaluation.tfliteAccuracy.keys,
          containsAll([ModelFormat.float32, ModelFormat.int8, ModelFormat.dynamicInt8]));
      expect(events.last.isTerminal, isTrue);
      expect(events.last.state, JobState.succeeded);
    });

    test('watch_job_after_end', () async {
      final events = await replay('watch_job_after_end').watchJob('job-1', afterSeq: 14).toList();
      expect(events, isEmpty);
    });

    test('MobiletrainClient.watchJob resumes after a dropped stream with Last-Event-ID', () async {
      final full = _sseText(_part('watch_job', 'response')['sse']! as List<Object?>);
      final cut = full.indexOf('id: 4\n');
      final resumedAt = <String?>[];
      final transport = RestTransport(_settings, httpClient: MockClient((request) async {
        resumedAt.add(request.headers['Last-Event-ID']);
        const headers = {'content-type': 'text/event-stream; charset=utf-8'};
        if (resumedAt.length == 1) {
          // The connection ends after event 3, as if the network dropped.
          return http.Response(full.substring(0, cut), 200, headers: headers);
        }
        final after = full.indexOf('id: 4\n');
        return http.Response(full.substring(after), 200, headers: headers);
      }));
      final client = MobiletrainClient(
          _settings.copyWith(retry: const RetryPolicy(initialDelay: Duration.zero)),
          transport: transport);
      final events = await client.watchJob('job-1').toList();
      expect(resumedAt, ['0', '3']);
      expect(events.map((e) => e.seq), [for (var i = 1; i <= 7; i++) i]);
      expect(events.last.isTerminal, isTrue);
    });
  });

  group('models', () {
    test('list_model_versions', () async {
      final versions = await replay('list_model_versions').listModelVersions('flowers');
      expect(versions, hasLength(1));
      expect(versions.single.version, 3);
      expect(versions.single.current, isTrue);
      expect(versions.single.artifacts.map((a) => a.format), contains(ModelFormat.trainStep));
      expect(versions.single.artifacts, hasLength(10));
    });

    test('get_manifest', () async {
      final manifest = await replay('get_manifest').getManifest('flowers');
      expect(manifest.projectId, 'p-123');
      expect(manifest.version, 3);
      expect(manifest.labels, ['rose', 'tulip']);
      expect(manifest.inputSpec.height, 32);
      expect(manifest.artifacts.map((a) => a.format), contains(ModelFormat.headWeights));
      final int8 = (manifest.json['formats']! as Map<String, Object?>)['int8']! as Map<String, Object?>;
      expect((int8['input']! as Map<String, Object?>)['dtype'], 'uint8');
    });

    test('check_update', () async {
      final check = await replay('check_update').checkForUpdate('flowers', format: ModelFormat.float32);
      expect(check.notModified, isFalse);
      expect(check.artifact!.sha256, _sha);
      expect(check.artifact!.size, _size);
      expect(check.artifact!.format, ModelFormat.float32);
      expect(check.latest!.version, 3);
    });

    test('check_update_current', () async {
      final check = await replay('check_update_current')
          .checkForUpdate('flowers', format: ModelFormat.float32, currentSha256: _sha);
      expect(check.notModified, isTrue);
    });

    test('download_model', () async {
      final file = List<int>.generate(_size, (i) => i % 251);
      final chunks = await replay('download_model', bytes: file)
          .downloadModel('flowers', version: 3, format: ModelFormat.float32)
          .toList();
      expect(chunks.expand((c) => c.data), file);
      expect(chunks.first.offset, 0);
      final info = chunks.first.info;
      expect(info.size, _size);
      expect(info.version, 3);
      expect(info.sha256, _sha);
      expect(info.fileName, 'flowers-v3-float32.tflite');
    });

    test('download_model_resume', () async {
      final file = List<int>.generate(_size, (i) => i % 251);
      final chunks = await replay(
        'download_model_resume',
        bytes: file.sublist(100),
        headers: {'content-range': 'bytes 100-${_size - 1}/$_size', 'content-length': '${_size - 100}'},
      ).downloadModel('flowers', version: 3, format: ModelFormat.float32, offset: 100).toList();
      expect(chunks.first.offset, 100);
      expect(chunks.expand((c) => c.data), file.sublist(100));
      expect(chunks.first.info.size, _size);
    });

    test('download_model_at_end', () async {
      final chunks = await replay('download_model_at_end')
          .downloadModel('flowers', version: 3, format: ModelFormat.float32, offset: _size)
          .toList();
      expect(chunks, hasLength(1));
      expect(chunks.single.data, isEmpty);
      expect(chunks.single.offset, _size);
      expect(chunks.single.info.size, _size);
      expect(chunks.single.info.sha256, _sha);
    });

    test('a server that ignores Range still yields the bytes from the offset', () async {
      final file = List<int>.generate(_size, (i) => i % 251);
      final transport = RestTransport(_settings, httpClient: MockClient((request) async {
        return http.Response.bytes(file, 200, headers: {
          'content-length': '$_size',
          'x-model-version': '3',
          'x-content-sha256': _sha,
        });
      }));
      final chunks = await transport
          .downloadModel('flowers', version: 3, format: ModelFormat.float32, offset: 100)
          .toList();
      expect(chunks.first.offset, 100);
      expect(chunks.expand((c) => c.data), file.sublist(100));
    });

    test('predict', () async {
      final predictions = await replay('predict').predict('flowers', [1, 2, 3]);
      expect(predictions, hasLength(2));
      expect(predictions.first.score, 0.5);
    });
  });

  group('errors', () {
    test('a gateway error without a catalog body is a retryable network error', () async {
      final transport = RestTransport(_settings,
          httpClient: MockClient((request) async => http.Response('<html>Bad Gateway</html>', 502)));
      await expectLater(
          transport.getJob('job-1'),
          throwsA(isA<MobiletrainException>()
              .having((e) => e.code, 'code', ErrorCodes.network)
              .having((e) => e.retryable, 'retryable', isTrue)));
    });

    test('a rate limit carries the server\'s retry delay', () {
      final e = MobiletrainException.fromHttp(
        429,
        jsonEncode({
          'code': 71,
          'error': 'rate_limited',
          'message': 'slow down',
          'details': {'retry_after_seconds': 1.5},
        }),
      );
      expect(e.code, ErrorCodes.rateLimited);
      expect(e.retryable, isTrue);
      expect(e.retryAfter, const Duration(milliseconds: 1500));
    });

    test('connection failures become network errors', () async {
      final transport = RestTransport(_settings,
          httpClient: MockClient((request) async => throw http.ClientException('refused')));
      await expectLater(
          transport.getProject('flowers'),
          throwsA(isA<MobiletrainException>()
              .having((e) => e.code, 'code', ErrorCodes.network)
              .having((e) => e.isNetworkError, 'isNetworkError', isTrue)));
    });
  });

  group('SseDecoder', () {
    test('follows the WHATWG parsing rules', () async {
      final lines = Stream.fromIterable([
        ': comment',
        'retry: 1500',
        '',
        'id: 7',
        'event: log',
        'data: {"a":',
        'data:1}',
        '',
        'data: no id or event',
        '',
      ]);
      final messages = await lines.transform(const SseDecoder()).toList();
      expect(messages, hasLength(3));
      expect(messages[0].retry, const Duration(milliseconds: 1500));
      expect(messages[1].id, '7');
      expect(messages[1].event, 'log');
      expect(messages[1].data, '{"a":\n1}');
      expect(messages[2].id, '7'); // the last event id persists
      expect(messages[2].event, 'message');
    });
  });
}
