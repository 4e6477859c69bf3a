/// On-device training with the stateless `train-step` model.
///
/// tflite_flutter has no signature runner and no Flex delegate, so the server
/// exports a train-step model made of builtin ops only: the app feeds a batch,
/// the current head weights and the learning rate, and gets the loss and the
/// new weights back (`mobiletrain/compute/ondevice.py` documents the files;
/// `mobiletrain/client/simulator.py` is the reference device this mirrors).
///
/// Train-step inputs, by position: `x (B, F)` float32 features, `y (B,)` int32
/// labels, `mask (B,)` float32 (1 = real row, 0 = padding), `lr (1,)`,
/// `mu (1,)` (FedProx strength, 0 = plain SGD), the weights, then the anchor
/// weights. Outputs: `loss (1,)` and the new weights, in the same order.
library;

import 'dart:io';
import 'dart:math' as math;
import 'dart:typed_data';

import 'package:image/image.dart' as img;
import 'package:tflite_flutter/tflite_flutter.dart';

import 'models.dart';
import 'preprocess.dart';
import 'tflite_memory.dart';

/// Positional data inputs of the train-step model, before the weights.
const List<String> trainStepDataInputs = ['x', 'y', 'mask', 'lr', 'mu'];

/// The trainable dense head: `featureDim -> hidden... (ReLU) -> numClasses`.
///
/// Weights are ordered `dense0_kernel, dense0_bias, dense1_kernel, ...`;
/// kernels have shape `(inputs, units)`.
class HeadSpec {
  /// A head; [batchSize] is the fixed batch of the train-step model.
  const HeadSpec({
    required this.featureDim,
    required this.numClasses,
    this.hidden = const [64],
    this.batchSize = 32,
  });

  /// Reads the manifest's `ondevice.head` object.
  factory HeadSpec.fromJson(Map<String, Object?> json) => HeadSpec(
        featureDim: _int(json['feature_dim']),
        numClasses: _int(json['num_classes']),
        hidden: [for (final h in (json['hidden'] as List<Object?>? ?? const [])) _int(h)],
        batchSize: json['batch_size'] == null ? 32 : _int(json['batch_size']),
      );

  /// Length of a feature vector.
  final int featureDim;

  /// Number of classes (outputs).
  final int numClasses;

  /// Widths of the hidden layers (empty: one dense layer).
  final List<int> hidden;

  /// Rows per train step.
  final int batchSize;

  /// Widths from the features to the classes.
  List<int> get layerSizes => [featureDim, ...hidden, numClasses];

  /// `(name, shape)` of every weight tensor, in order.
  List<(String, List<int>)> get weightShapes {
    final sizes = layerSizes;
    return [
      for (var i = 0; i < sizes.length - 1; i++) ...[
        ('dense${i}_kernel', [sizes[i], sizes[i + 1]]),
        ('dense${i}_bias', [sizes[i + 1]]),
      ],
    ];
  }

  /// Total number of weights.
  int get numParameters =>
      weightShapes.fold<int>(0, (sum, t) => sum + t.$2.fold<int>(1, (a, b) => a * b));

  /// JSON form (the manifest's `ondevice.head`).
  Map<String, Object?> toJson() => {
        'feature_dim': featureDim,
        'num_classes': numClasses,
        'hidden': hidden,
        'batch_size': batchSize,
      };
}

/// What a device needs from a manifest's `ondevice` section (or a federated
/// session's `ondevice` object): the head, the input spec and the labels.
class OnDeviceSpec {
  /// Builds a spec from its parts.
  const OnDeviceSpec({required this.head, required this.labels, this.input, this.json = const {}});

  /// Parses an `ondevice` object; [input] and [labels] override what it holds
  /// (a trained version's manifest keeps them at the top level).
  factory OnDeviceSpec.fromJson(
    Map<String, Object?> ondevice, {
    InputSpec? input,
    List<String>? labels,
  }) {
    final head = ondevice['head'];
    if (head is! Map<String, Object?>) {
      throw const FormatException('the ondevice section has no head');
    }
    final inputJson = ondevice['input'];
    return OnDeviceSpec(
      head: HeadSpec.fromJson(head),
      labels: labels ??
          [for (final l in (ondevice['labels'] as List<Object?>? ?? const [])) '$l'],
      input: input ?? (inputJson is Map<String, Object?> ? inputSpecFromJson(inputJson) : null),
      json: ondevice,
    );
  }

  /// The `ondevice` section of a model version's [manifest].
  factory OnDeviceSpec.fromManifest(Manifest manifest) {
    final section = manifest.json['ondevice'];
    if (section is! Map<String, Object?>) {
      throw StateError('model version ${manifest.version} has no on-device training files');
    }
    return OnDeviceSpec.fromJson(section, input: manifest.inputSpec, labels: manifest.labels);
  }

  /// The trainable head.
  final HeadSpec head;

  /// Class labels in output order.
  final List<String> labels;

  /// How images are preprocessed for the feature extractor, when known.
  final InputSpec? input;

  /// The whole section as the server wrote it.
  final Map<String, Object?> json;
}

int _int(Object? value) => switch (value) {
      final int v => v,
      final num v => v.toInt(),
      final String v => int.parse(v),
      _ => throw FormatException('expected an integer, got $value'),
    };

/// The head's weights: one float32 tensor per entry of [HeadSpec.weightShapes].
///
/// The `head-weights` file (and a federated task's weights) is every tensor as
/// little-endian float32, row-major, back to back, with no header.
class HeadWeights {
  /// Wraps [tensors]; their number and sizes must match [head].
  HeadWeights(this.head, List<Float32List> tensors) : tensors = List.unmodifiable(tensors) {
    final shapes = head.weightShapes;
    if (tensors.length != shapes.length) {
      throw ArgumentError('expected ${shapes.length} weight tensors, got ${tensors.length}');
    }
    for (var i = 0; i < shapes.length; i++) {
      final size = shapes[i].$2.fold<int>(1, (a, b) => a * b);
      if (tensors[i].length != size) {
        throw ArgumentError('${shapes[i].$1} has ${tensors[i].length} values, expected $size');
      }
    }
  }

  /// Parses the `head-weights` file format; throws [FormatException] when the
  /// size does not match [head].
  factory HeadWeights.fromBytes(List<int> bytes, HeadSpec head) {
    final expected = 4 * head.numParameters;
    if (bytes.length != expected) {
      throw FormatException('head weights must be $expected bytes, got ${bytes.length}');
    }
    final data = bytes is Uint8List ? bytes : Uint8List.fromList(bytes);
    final view = ByteData.sublistView(data);
    var offset = 0;
    final tensors = <Float32List>[];
    for (final (_, shape) in head.weightShapes) {
      final n = shape.fold<int>(1, (a, b) => a * b);
      final t = Float32List(n);
      for (var i = 0; i < n; i++, offset += 4) {
        t[i] = view.getFloat32(offset, Endian.little);
      }
      tensors.add(t);
    }
    return HeadWeights(head, tensors);
  }

  /// The head these weights belong to.
  final HeadSpec head;

  /// The tensors, flattened row-major.
  final List<Float32List> tensors;

  /// The `head-weights` file bytes (little-endian float32).
  Uint8List toBytes() {
    final out = Uint8List(4 * head.numParameters);
    final view = ByteData.sublistView(out);
    var offset = 0;
    for (final t in tensors) {
      for (var i = 0; i < t.length; i++, offset += 4) {
        view.setFloat32(offset, t[i], Endian.little);
      }
    }
    return out;
  }

  /// A deep copy.
  HeadWeights copy() => HeadWeights(head, [for (final t in tensors) Float32List.fromList(t)]);

  /// `this - base`, tensor by tensor: the update a round produced.
  HeadWeights delta(HeadWeights base) => HeadWeights(head, [
        for (var k = 0; k < tensors.length; k++)
          Float32List.fromList([
            for (var i = 0; i < tensors[k].length; i++) tensors[k][i] - base.tensors[k][i],
          ]),
      ]);

  /// `this + scale * delta`, tensor by tensor.
  HeadWeights plus(HeadWeights delta, {double scale = 1.0}) => HeadWeights(head, [
        for (var k = 0; k < tensors.length; k++)
          Float32List.fromList([
            for (var i = 0; i < tensors[k].length; i++)
              tensors[k][i] + scale * delta.tensors[k][i],
          ]),
      ]);

  /// Euclidean norm over every weight.
  double get l2Norm {
    var sum = 0.0;
    for (final t in tensors) {
      for (final v in t) {
        sum += v * v;
      }
    }
    return math.sqrt(sum);
  }

  /// True when every weight is finite (the server rejects NaN and infinity).
  bool get isFinite => tensors.every((t) => t.every((v) => v.isFinite));
}

/// The outcome of [OnDeviceTrainer.fit].
class TrainingRun {
  /// Results of a run.
  const TrainingRun({
    required this.weights,
    required this.numSamples,
    required this.steps,
    required this.losses,
  });

  /// The weights after the last step.
  final HeadWeights weights;

  /// Local samples trained on (what a federated update reports).
  final int numSamples;

  /// Train steps run.
  final int steps;

  /// Loss of every step.
  final List<double> losses;

  /// Mean loss over the steps (NaN when none ran).
  double get meanLoss =>
      losses.isEmpty ? double.nan : losses.reduce((a, b) => a + b) / losses.length;
}

Uint8List _bytesOf(TypedData data) =>
    data.buffer.asUint8List(data.offsetInBytes, data.lengthInBytes);

/// Runs the `train-step` model: one SGD step per [trainBatch] call, weights
/// kept in memory between calls.
///
/// ```dart
/// final trainer = await OnDeviceTrainer.load(trainStepFile, headWeightsFile, manifest);
/// final loss = trainer.trainBatch(features, labels);
/// await trainer.saveWeights(headWeightsFile);
/// ```
class OnDeviceTrainer {
  OnDeviceTrainer._(
    this._interpreter,
    this.spec,
    HeadWeights weights,
    this.learningRate, {
    File? weightsFile,
  })  : _weights = weights.copy(),
        _weightsFile = weightsFile {
    _checkModel();
  }

  /// Loads a train-step model file and a head-weights file described by a
  /// model version's [manifest] (its `ondevice` section).
  static Future<OnDeviceTrainer> load(
    File trainStepModelFile,
    File headWeightsFile,
    Manifest manifest, {
    double learningRate = 0.05,
    int threads = 2,
  }) async {
    final spec = OnDeviceSpec.fromManifest(manifest);
    final weights = HeadWeights.fromBytes(await headWeightsFile.readAsBytes(), spec.head);
    final interpreter = interpreterFromFile(trainStepModelFile, threads: threads);
    return OnDeviceTrainer._(
      interpreter,
      spec,
      weights,
      learningRate,
      weightsFile: headWeightsFile,
    );
  }

  /// A trainer from bytes already in memory (e.g. a federated session's files).
  factory OnDeviceTrainer.fromBuffers(
    Uint8List trainStepModel,
    HeadWeights weights,
    OnDeviceSpec spec, {
    double learningRate = 0.05,
    int threads = 2,
  }) =>
      OnDeviceTrainer._(
        interpreterFromBytes(trainStepModel, threads: threads),
        spec,
        weights,
        learningRate,
      );

  final Interpreter _interpreter;
  final File? _weightsFile;

  /// Head, labels and input spec.
  final OnDeviceSpec spec;

  /// Default learning rate of [trainBatch] and [fit].
  double learningRate;

  HeadWeights _weights;

  /// The proximal anchor for FedProx (`mu > 0`); null: the current weights.
  HeadWeights? anchors;

  /// The head being trained.
  HeadSpec get head => spec.head;

  /// The fixed batch size of the model; shorter batches are padded and masked.
  int get batchSize => spec.head.batchSize;

  /// The current weights (a copy is kept, so later edits do not leak in).
  HeadWeights get weights => _weights.copy();

  set weights(HeadWeights value) {
    if (value.head.numParameters != head.numParameters) {
      throw ArgumentError('the weights belong to a different head');
    }
    _weights = HeadWeights(head, [for (final t in value.tensors) Float32List.fromList(t)]);
  }

  void _checkModel() {
    final n = head.weightShapes.length;
    final inputs = _interpreter.getInputTensors();
    final outputs = _interpreter.getOutputTensors();
    final expectedIn = trainStepDataInputs.length + 2 * n;
    if (inputs.length != expectedIn || outputs.length != 1 + n) {
      throw StateError('the train-step model has ${inputs.length} inputs and '
          '${outputs.length} outputs; the head needs $expectedIn and ${1 + n}');
    }
    final x = inputs[0].shape;
    if (x.length != 2 || x[0] != batchSize || x[1] != head.featureDim) {
      throw StateError('the train-step input x has shape $x, the head expects '
          '[$batchSize, ${head.featureDim}]');
    }
  }

  /// One SGD step on up to [batchSize] rows; returns the batch loss and keeps
  /// the new weights.
  ///
  /// [features] are rows of `featureDim` values; [labels] are class indices.
  /// [mu] > 0 adds FedProx's proximal term towards [anchors].
  double trainBatch(
    List<List<double>> features,
    List<int> labels, {
    double? learningRate,
    double mu = 0.0,
  }) {
    final b = batchSize;
    final f = head.featureDim;
    if (features.length != labels.length) {
      throw ArgumentError('${features.length} feature rows but ${labels.length} labels');
    }
    if (features.isEmpty || features.length > b) {
      throw ArgumentError('a batch has 1 to $b rows, got ${features.length}');
    }
    final x = Float32List(b * f);
    final y = Int32List(b);
    final mask = Float32List(b);
    for (var r = 0; r < features.length; r++) {
      final row = features[r];
      if (row.length != f) {
        throw ArgumentError('feature row $r has ${row.length} values, expected $f');
      }
      final label = labels[r];
      if (label < 0 || label >= head.numClasses) {
        throw RangeError.range(label, 0, head.numClasses - 1, 'labels[$r]');
      }
      x.setRange(r * f, (r + 1) * f, row);
      y[r] = label;
      mask[r] = 1.0;
    }
    final anchor = anchors ?? _weights;
    final inputs = <Object>[
      _bytesOf(x),
      _bytesOf(y),
      _bytesOf(mask),
      _bytesOf(Float32List.fromList([learningRate ?? this.learningRate])),
      _bytesOf(Float32List.fromList([mu])),
      for (final t in _weights.tensors) _bytesOf(t),
      for (final t in anchor.tensors) _bytesOf(t),
    ];
    _interpreter.runInference(inputs);
    final loss = _readFloats(0)[0];
    _weights = HeadWeights(head, [
      for (var i = 0; i < _weights.tensors.length; i++) _readFloats(i + 1),
    ]);
    return loss;
  }

  Float32List _readFloats(int output) {
    // Copy: the tensor's memory is reused by the next invoke.
    final bytes = Uint8List.fromList(_interpreter.getOutputTensor(output).data);
    return bytes.buffer.asFloat32List();
  }

  /// [epochs] passes of shuffled mini-batch SGD over local data, as the
  /// reference device does; [onStep] sees every step's loss.
  ///
  /// With [mu] > 0 and no [anchors] set, the starting weights are the anchor.
  TrainingRun fit(
    List<List<double>> features,
    List<int> labels, {
    int epochs = 1,
    double? learningRate,
    double mu = 0.0,
    int seed = 0,
    void Function(int epoch, int step, double loss)? onStep,
  }) {
    if (features.length != labels.length) {
      throw ArgumentError('${features.length} feature rows but ${labels.length} labels');
    }
    final savedAnchors = anchors;
    anchors ??= _weights.copy();
    final rng = math.Random(seed);
    final order = List<int>.generate(features.length, (i) => i);
    final losses = <double>[];
    try {
      for (var epoch = 0; epoch < epochs; epoch++) {
        order.shuffle(rng);
        for (var start = 0; start < order.length; start += batchSize) {
          final idx = order.sublist(start, math.min(start + batchSize, order.length));
          final loss = trainBatch(
            [for (final i in idx) features[i]],
            [for (final i in idx) labels[i]],
            learningRate: learningRate,
            mu: mu,
          );
          losses.add(loss);
          onStep?.call(epoch, losses.length, loss);
        }
      }
    } finally {
      anchors = savedAnchors;
    }
    return TrainingRun(
      weights: weights,
      numSamples: features.length,
      steps: losses.length,
      losses: losses,
    );
  }

  /// The change since [base] (e.g. the round's global weights).
  HeadWeights delta(HeadWeights base) => _weights.delta(base);

  /// Writes the current weights as a `head-weights` file, atomically (a temp
  /// file renamed over the target), so a crash never leaves half a file.
  ///
  /// Without [file], overwrites the weights file the trainer was loaded from.
  Future<void> saveWeights([File? file]) async {
    final target = file ?? _weightsFile;
    if (target == null) {
      throw StateError('no weights file: pass one to saveWeights');
    }
    final tmp = File('${target.path}.tmp');
    await tmp.writeAsBytes(_weights.toBytes(), flush: true);
    await tmp.rename(target.path);
  }

  /// Releases the interpreter.
  void close() => _interpreter.close();
}

/// The `feature-extractor` model: normalised image `(1, H, W, C)` to features
/// `(1, F)`; it is frozen, so a device computes its images' features once.
class FeatureExtractor {
  FeatureExtractor._(this._interpreter, this.spec) {
    featureDim = _interpreter.getOutputTensor(0).shape.last;
  }

  /// Loads the extractor file; [spec] says how images are preprocessed.
  static Future<FeatureExtractor> load(File file, InputSpec spec, {int threads = 2}) async =>
      FeatureExtractor._(interpreterFromFile(file, threads: threads), spec);

  /// An extractor from bytes in memory.
  factory FeatureExtractor.fromBuffer(Uint8List model, InputSpec spec, {int threads = 2}) =>
      FeatureExtractor._(interpreterFromBytes(model, threads: threads), spec);

  final Interpreter _interpreter;

  /// The input contract of the extractor.
  final InputSpec spec;

  /// Length of a feature vector.
  late final int featureDim;

  late final ImagePreprocessor _preprocessor = ImagePreprocessor(spec);

  /// Features of one image: encoded bytes, an `image` package image or
  /// [ImagePixels] already of the spec's size.
  Float32List features(Object image) {
    final pixels = switch (image) {
      final ImagePixels p => p,
      final List<int> bytes => _preprocessor.decode(bytes),
      final img.Image decoded => _preprocessor.fromImage(decoded),
      _ => throw ArgumentError.value(image, 'image', 'expected bytes, an Image or ImagePixels'),
    };
    final input = _preprocessor.normalize(pixels);
    _interpreter.runInference([_bytesOf(input)]);
    final bytes = Uint8List.fromList(_interpreter.getOutputTensor(0).data);
    return bytes.buffer.asFloat32List();
  }

  /// Releases the interpreter.
  void close() => _interpreter.close();
}

/// The `head-inference` model: features `(N, F)` and weights in, class
/// probabilities out (to measure the head on local data without a classifier
/// file per weight update).
class HeadClassifier {
  HeadClassifier._(this._interpreter, this.head);

  /// Loads the head-inference file.
  static Future<HeadClassifier> load(File file, HeadSpec head, {int threads = 2}) async =>
      HeadClassifier._(interpreterFromFile(file, threads: threads), head);

  /// A head classifier from bytes in memory.
  factory HeadClassifier.fromBuffer(Uint8List model, HeadSpec head, {int threads = 2}) =>
      HeadClassifier._(interpreterFromBytes(model, threads: threads), head);

  final Interpreter _interpreter;

  /// The head the weights belong to.
  final HeadSpec head;

  int _rows = -1;

  /// Probabilities, one row of `numClasses` per feature row.
  List<Float32List> probabilities(List<List<double>> features, HeadWeights weights) {
    if (features.isEmpty) return const [];
    final f = head.featureDim;
    if (_rows != features.length) {
      _interpreter.resizeInputTensor(0, [features.length, f]);
      _interpreter.allocateTensors();
      _rows = features.length;
    }
    final x = Float32List(features.length * f);
    for (var r = 0; r < features.length; r++) {
      x.setRange(r * f, (r + 1) * f, features[r]);
    }
    _interpreter.runInference([_bytesOf(x), for (final t in weights.tensors) _bytesOf(t)]);
    final out = Uint8List.fromList(_interpreter.getOutputTensor(0).data).buffer.asFloat32List();
    final c = head.numClasses;
    return [for (var r = 0; r < features.length; r++) Float32List.sublistView(out, r * c, (r + 1) * c)];
  }

  /// Top-1 accuracy of [weights] on labelled features (0 for none).
  double accuracy(List<List<double>> features, List<int> labels, HeadWeights weights) {
    if (features.isEmpty) return 0;
    final probs = probabilities(features, weights);
    var correct = 0;
    for (var r = 0; r < probs.length; r++) {
      var best = 0;
      for (var k = 1; k < probs[r].length; k++) {
        if (probs[r][k] > probs[r][best]) best = k;
      }
      if (best == labels[r]) correct++;
    }
    return correct / features.length;
  }

  /// Releases the interpreter.
  void close() => _interpreter.close();
}
