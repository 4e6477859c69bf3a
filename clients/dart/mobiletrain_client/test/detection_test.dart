// ObjectDetector against the server's exported detector: test/fixtures/detection/
// holds a small trained model (the server's dynamic-int8 export, decoding and NMS
// inside), its manifest, two scenes and golden.json: per scene and resize mode the
// raw outputs LiteRT gives and the detections in image pixels (regenerated and
// checked by tests/unit/clients/test_dart_detection_fixtures.py).
//
// The decoding tests run everywhere. The end-to-end test runs the model through
// tflite_flutter and needs the TensorFlow Lite C library on the host
// (set MOBILETRAIN_TFLITE_TESTS=1 where `flutter test` can load it, or run it
// as an integration test on a device).
import 'dart:convert';
import 'dart:io';
import 'dart:typed_data';

import 'package:flutter_test/flutter_test.dart';
import 'package:mobiletrain_client/src/detection.dart';
import 'package:mobiletrain_client/src/models.dart';
import 'package:mobiletrain_client/src/preprocess.dart';

const _dir = 'test/fixtures/detection';

Map<String, Object?> _json(String name) =>
    jsonDecode(File('$_dir/$name').readAsStringSync()) as Map<String, Object?>;

List<double> _doubles(Object? list) => [for (final v in list! as List<Object?>) (v! as num).toDouble()];

void main() {
  final golden = _json('golden.json');
  final manifestJson = _json('manifest.json');
  final labels = [for (final l in manifestJson['labels']! as List<Object?>) l! as String];
  final input = manifestJson['input']! as Map<String, Object?>;
  final modelW = input['width']! as int;
  final modelH = input['height']! as int;
  final cases = (golden['cases']! as List<Object?>).cast<Map<String, Object?>>();

  void expectDetections(List<Detection> found, List<Object?> expected, String what) {
    expect(found.length, expected.length, reason: what);
    for (var i = 0; i < found.length; i++) {
      final e = expected[i]! as Map<String, Object?>;
      final box = e['box']! as Map<String, Object?>;
      expect(found[i].label, e['label'], reason: '$what #$i');
      expect(found[i].index, e['index'], reason: '$what #$i');
      expect(found[i].score, closeTo((e['score']! as num).toDouble(), 1e-6), reason: '$what #$i');
      for (final (key, value) in [
        ('left', found[i].box.left),
        ('top', found[i].box.top),
        ('right', found[i].box.right),
        ('bottom', found[i].box.bottom),
      ]) {
        expect(value, closeTo((box[key]! as num).toDouble(), 1e-3), reason: '$what #$i $key');
      }
    }
  }

  for (final c in cases) {
    final what = '${c['image']} ${c['mode']}';
    final mode = c['mode'] == 'letterbox' ? ResizeMode.letterbox : ResizeMode.stretch;
    final m = c['mapping']! as Map<String, Object?>;

    test('the input mapping is the server fixture\'s: $what', () {
      final mapping = InputMapping.forImage(m['iw']! as int, m['ih']! as int, modelW, modelH, mode: mode);
      expect(mapping.scaleX, closeTo((m['sx']! as num).toDouble(), 1e-12));
      expect(mapping.scaleY, closeTo((m['sy']! as num).toDouble(), 1e-12));
      expect(mapping.padX, m['px']);
      expect(mapping.padY, m['py']);
    });

    test('decodeDetections maps the model\'s boxes to image pixels: $what', () {
      final raw = c['raw']! as Map<String, Object?>;
      final mapping = InputMapping.forImage(m['iw']! as int, m['ih']! as int, modelW, modelH, mode: mode);
      final found = decodeDetections(
        boxes: _doubles(raw['boxes']),
        classes: _doubles(raw['classes']),
        scores: _doubles(raw['scores']),
        count: _doubles(raw['count']).first,
        labels: labels,
        mapping: mapping,
      );
      expectDetections(found, c['detections']! as List<Object?>, what);
    });
  }

  test('minScore drops weak rows; rows past count are never read', () {
    final mapping = InputMapping.forImage(200, 100, 100, 100);
    final found = decodeDetections(
      boxes: [0.1, 0.1, 0.5, 0.5, 0.2, 0.2, 0.4, 0.4, 0.3, 0.3, 0.9, 0.9],
      classes: [0, 2, 1],
      scores: [0.9, 0.4, 0.8],
      count: 2,
      labels: const ['a', 'b'],
      mapping: mapping,
      minScore: 0.3,
    );
    expect(found.map((d) => d.label), ['a', 'class_2']);
    // y_min, x_min, y_max, x_max of the model input -> left, top, right, bottom in pixels.
    expect(found.first.box.toJson(), {'left': 20.0, 'top': 10.0, 'right': 100.0, 'bottom': 50.0});
    final strict = decodeDetections(
      boxes: [0.1, 0.1, 0.5, 0.5],
      classes: [0],
      scores: [0.4],
      count: 1,
      labels: const ['a'],
      mapping: mapping,
      minScore: 0.5,
    );
    expect(strict, isEmpty);
  });

  test('a letterboxed box in the padding has no area and is dropped', () {
    // 200x100 into 100x100: the image is 100x50 at y 25..75.
    final mapping = InputMapping.forImage(200, 100, 100, 100, mode: ResizeMode.letterbox);
    expect((mapping.padX, mapping.padY), (0, 25));
    final found = decodeDetections(
      boxes: [0.0, 0.1, 0.2, 0.5, 0.3, 0.0, 0.7, 1.0],
      classes: [0, 0],
      scores: [0.9, 0.8],
      count: 2,
      labels: const ['a'],
      mapping: mapping,
    );
    expect(found.length, 1);
    expect(found.single.box.toJson(), {'left': 0.0, 'top': 10.0, 'right': 200.0, 'bottom': 90.0});
  });

  test('outputs are found by the manifest roles and tensor names', () {
    final names = ['detection_boxes', 'detection_classes', 'detection_scores', 'num_detections'];
    expect(detectionOutputIndex(manifestJson['outputs'], names), {'boxes': 0, 'classes': 1, 'scores': 2, 'count': 3});
    // Another tensor order: the names decide.
    expect(
      detectionOutputIndex(manifestJson['outputs'], [names[3], names[2], names[1], names[0]]),
      {'boxes': 3, 'classes': 2, 'scores': 1, 'count': 0},
    );
    // No manifest outputs: the contract order.
    expect(detectionOutputIndex(null, names), {'boxes': 0, 'classes': 1, 'scores': 2, 'count': 3});
  });

  test('letterboxPixels centres the scaled image on grey', () {
    final src = ImagePixels(width: 4, height: 2, channels: 1, data: Uint8List.fromList([10, 20, 30, 40, 50, 60, 70, 80]));
    final out = letterboxPixels(src, 4, 4);
    expect(out.data.sublist(0, 4), [114, 114, 114, 114]);
    expect(out.data.sublist(4, 12), [10, 20, 30, 40, 50, 60, 70, 80]);
    expect(out.data.sublist(12), [114, 114, 114, 114]);
  });

  test(
    'ObjectDetector runs the exported model like LiteRT on the server',
    () {
      final manifest = Manifest.fromJson(manifestJson);
      final detector = ObjectDetector.fromFile(
        File('$_dir/detector-dynamic-int8.tflite'),
        manifest,
        format: ModelFormat.dynamicInt8,
      );
      addTearDown(detector.close);
      for (final c in cases) {
        final mode = c['mode'] == 'letterbox' ? ResizeMode.letterbox : ResizeMode.stretch;
        final png = File('$_dir/${c['image']}').readAsBytesSync();
        final found = detector.detect(png, mode: mode);
        expectDetections(found, c['detections']! as List<Object?>, '${c['image']} ${c['mode']}');
      }
    },
    skip: Platform.environment['MOBILETRAIN_TFLITE_TESTS'] == '1'
        ? false
        : 'needs the TensorFlow Lite C library (MOBILETRAIN_TFLITE_TESTS=1)',
  );
}
