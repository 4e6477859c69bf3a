import 'package:mobiletrain_client/src/inference.dart';
import 'package:flutter_test/flutter_test.dart';

// Expected values come from the server's numpy code (compute/litert.py):
// clip(round(x / float32(scale)) + zero_point) and (q - zero_point) * scale.

const _normalised = [
  -1.0, -0.9921568632125854, -0.9843137264251709, -0.0039215087890625, //
  0.003921627998352051, 0.5686275959014893, 1.0,
];

void main() {
  test('roundHalfEven rounds ties to even, like numpy', () {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6, -2.6].map(roundHalfEven), [
      0.0, 2.0, 2.0, -0.0, -2.0, 2.0, 3.0, -3.0, //
    ]);
  });

  test('quantizes the input like the server', () {
    expect(quantizeValues(_normalised, const TensorQuantization(0.0078125, 128)), [0, 1, 2, 127, 129, 201, 255]);
    expect(quantizeValues(_normalised, const TensorQuantization(1 / 255, 0)), [0, 0, 0, 0, 1, 145, 255]);
    expect(quantizeValues(_normalised, const TensorQuantization(0.02, 3)), [0, 0, 0, 3, 3, 31, 53]);
    expect(
      quantizeValues(_normalised, const TensorQuantization(0.0078125, 0), min: -128, max: 127),
      [-128, -127, -126, -1, 1, 73, 127],
    );
  });

  test('dequantizes the output like the server', () {
    expect(dequantizeValues([0, 1, 128, 255], const TensorQuantization(0.00390625, 0)), [0.0, 0.00390625, 0.5, 0.99609375]);
    expect(dequantizeValues([0, 1, 128, 255], const TensorQuantization(0.1, 10)), [
      -1.0, -0.9000000357627869, 11.800000190734863, 24.5, //
    ]);
  });

  test('reads quantization parameters from the manifest', () {
    final q = TensorQuantization.fromJson({'scale': 0.5, 'zero_point': 3})!;
    expect([q.scale, q.zeroPoint], [0.5, 3]);
    expect(TensorQuantization.fromJson(null), isNull);
    expect(TensorQuantization.fromJson({'scale': 0.0, 'zero_point': 0}), isNull);
  });

  test('softmax is normalised and stable', () {
    final p = softmax([1000.0, 1000.0, 0.0]);
    expect(p[0], closeTo(0.5, 1e-6));
    expect(p[1], closeTo(0.5, 1e-6));
    expect(p[2], closeTo(0.0, 1e-6));
  });

  test('top-k predictions carry labels, best first', () {
    final top = topPredictions([0.1, 0.6, 0.3], ['cat', 'dog', 'bird'], k: 2);
    expect(top.map((p) => p.label), ['dog', 'bird']);
    expect(top.map((p) => p.index), [1, 2]);
    expect(top.first.score, 0.6);
    final unnamed = topPredictions([0.2, 0.8], ['cat'], k: 5);
    expect(unnamed.map((p) => p.label), ['class_1', 'cat']);
  });
}
