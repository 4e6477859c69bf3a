import 'dart:typed_data';

import 'package:mobiletrain_client/src/models.dart';
import 'package:mobiletrain_client/src/on_device_training.dart';
import 'package:flutter_test/flutter_test.dart';

/// `weights_to_bytes` of the server (federated/head.py) for the weights below.
const _serverBytesHex = '0000003f000080bf000000400000803e000000be00004040cdcccc3dcdcc4cbe';

Uint8List _hex(String hex) =>
    Uint8List.fromList([for (var i = 0; i < hex.length; i += 2) int.parse(hex.substring(i, i + 2), radix: 16)]);

const _head = HeadSpec(featureDim: 3, numClasses: 2, hidden: [], batchSize: 4);

void main() {
  test('head spec lists the weight tensors in the server order', () {
    const head = HeadSpec(featureDim: 64, numClasses: 10, hidden: [32]);
    expect(head.weightShapes.map((t) => '${t.$1} ${t.$2}'), [
      'dense0_kernel [64, 32]',
      'dense0_bias [32]',
      'dense1_kernel [32, 10]',
      'dense1_bias [10]',
    ]);
    expect(head.numParameters, 64 * 32 + 32 + 32 * 10 + 10);
    final parsed = HeadSpec.fromJson(head.toJson());
    expect([parsed.featureDim, parsed.numClasses, parsed.hidden, parsed.batchSize], [64, 10, [32], 32]);
  });

  test('head-weights bytes match the server format', () {
    final weights = HeadWeights.fromBytes(_hex(_serverBytesHex), _head);
    expect(weights.tensors[0], [0.5, -1.0, 2.0, 0.25, -0.125, 3.0]);
    expect(weights.tensors[1], [0.10000000149011612, -0.20000000298023224]);
    expect(weights.toBytes(), _hex(_serverBytesHex));
  });

  test('a weights file of the wrong size is rejected', () {
    expect(() => HeadWeights.fromBytes(Uint8List(12), _head), throwsFormatException);
  });

  test('delta and plus are inverse', () {
    final base = HeadWeights.fromBytes(_hex(_serverBytesHex), _head);
    final moved = HeadWeights(_head, [
      Float32List.fromList([1, 1, 1, 1, 1, 1]),
      Float32List.fromList([0, 0]),
    ]);
    final delta = moved.delta(base);
    expect(delta.tensors[0], [0.5, 2.0, -1.0, 0.75, 1.125, -2.0]);
    expect(base.plus(delta).tensors[0], moved.tensors[0]);
    expect(base.isFinite, isTrue);
    expect(HeadWeights(_head, [Float32List.fromList([double.nan, 0, 0, 0, 0, 0]), Float32List(2)]).isFinite, isFalse);
  });

  test('reads a federated session ondevice section', () {
    final spec = OnDeviceSpec.fromJson({
      'head': {'feature_dim': 64, 'num_classes': 3, 'hidden': [16], 'batch_size': 8},
      'input': {'width': 8, 'height': 8, 'channels': 1, 'color_mode': 'grayscale', 'normalization': 'zero-one', 'scale': 1 / 255, 'offset': 0.0},
      'labels': ['a', 'b', 'c'],
    });
    expect(spec.head.batchSize, 8);
    expect(spec.labels, ['a', 'b', 'c']);
    expect(spec.input!.colorMode, ColorMode.grayscale);
  });

  test('a manifest without on-device files is refused', () {
    const manifest = Manifest(
      projectId: 'p',
      version: 3,
      labels: ['a', 'b'],
      inputSpec: InputSpec(
        width: 8,
        height: 8,
        colorMode: ColorMode.rgb,
        normalization: Normalization.zeroOne,
        channels: 3,
        scale: 1 / 255,
        offset: 0,
      ),
      artifacts: [],
      json: {},
    );
    expect(() => OnDeviceSpec.fromManifest(manifest), throwsStateError);
  });
}
