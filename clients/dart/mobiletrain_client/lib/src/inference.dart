/// On-device classification with tflite_flutter, driven by the manifest.
///
/// Mirrors the server's LiteRT evaluation (`mobiletrain/compute/litert.py`):
/// float models get `pixel * scale + offset`; quantised (uint8/int8) inputs get
/// that value quantised with the input tensor's scale and zero point
/// (`round(x / scale) + zero_point`, clipped), and quantised outputs are
/// dequantised with the output tensor's parameters. The `int8` export has
/// uint8 input and output; with the zero-one spec its input is the raw pixel.
library;

import 'dart:io';
import 'dart:math' as math;
import 'dart:typed_data';

import 'package:image/image.dart' as img;
import 'package:tflite_flutter/tflite_flutter.dart';

import 'model_manager.dart';
import 'models.dart';
import 'preprocess.dart';
import 'tflite_memory.dart';

/// Scale and zero point of a quantised tensor: `real = (q - zeroPoint) * scale`.
class TensorQuantization {
  /// Parameters of one tensor.
  const TensorQuantization(this.scale, this.zeroPoint);

  /// Reads `{"scale": ..., "zero_point": ...}` from a manifest; null for
  /// float tensors (`"quantization": null`).
  static TensorQuantization? fromJson(Object? json) {
    if (json case {'scale': final num scale, 'zero_point': final num zeroPoint}) {
      if (scale == 0) return null;
      return TensorQuantization(scale.toDouble(), zeroPoint.toInt());
    }
    return null;
  }

  /// Step between two quantised values.
  final double scale;

  /// Quantised value of real 0.
  final int zeroPoint;
}

/// Round half to even, like `numpy.round`.
double roundHalfEven(double x) {
  final floor = x.floorToDouble();
  final fraction = x - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 == 0 ? floor : floor + 1;
}

final Float32List _f32 = Float32List(1);

double _toF32(double v) {
  _f32[0] = v;
  return _f32[0];
}

/// Quantises float32 [values] into the integer range `[min, max]` with [q]:
/// `clip(round(v / scale) + zeroPoint)` in float32, as the server does.
List<int> quantizeValues(List<double> values, TensorQuantization q, {int min = 0, int max = 255}) {
  final scale = _toF32(q.scale);
  return [
    for (final v in values) (roundHalfEven(_toF32(v / scale)) + q.zeroPoint).clamp(min, max).toInt(),
  ];
}

/// `(raw - zeroPoint) * scale` in float32.
Float32List dequantizeValues(List<int> raw, TensorQuantization q) {
  final out = Float32List(raw.length);
  final zero = _toF32(q.zeroPoint.toDouble());
  final scale = _toF32(q.scale);
  for (var i = 0; i < raw.length; i++) {
    out[i] = _toF32(raw[i] - zero) * scale;
  }
  return out;
}

/// Softmax of [logits] (stable: the maximum is subtracted first).
Float32List softmax(List<double> logits) {
  if (logits.isEmpty) return Float32List(0);
  final top = logits.reduce(math.max);
  final exps = [for (final v in logits) math.exp(v - top)];
  final sum = exps.fold(0.0, (a, b) => a + b);
  return Float32List.fromList([for (final e in exps) e / sum]);
}

/// The [k] best [scores] as predictions, best first (ties: lower index first).
///
/// A score without a label (fewer labels than outputs) is named `class_<i>`.
List<Prediction> topPredictions(List<double> scores, List<String> labels, {int k = 3}) {
  final order = List<int>.generate(scores.length, (i) => i)
    ..sort((a, b) {
      final c = scores[b].compareTo(scores[a]);
      return c != 0 ? c : a.compareTo(b);
    });
  return [
    for (final i in order.take(math.max(0, k)))
      Prediction(label: i < labels.length ? labels[i] : 'class_$i', index: i, score: scores[i]),
  ];
}

/// Classifies images with a downloaded `.tflite` classifier.
///
/// ```dart
/// final classifier = await ImageClassifier.load(installed);
/// final top = classifier.classify(jpegBytes, topK: 3);
/// ```
///
/// Inference runs synchronously on the calling isolate; for a live camera
/// preview run it in a background isolate (e.g. `Isolate.run`) with a
/// classifier created there.
class ImageClassifier {
  ImageClassifier._(this._interpreter, this.manifest, this.format, {bool emulateJpegDraft = true})
      : preprocessor = ImagePreprocessor(manifest.inputSpec, emulateJpegDraft: emulateJpegDraft) {
    _inspect();
  }

  /// Loads an installed model (see `ModelManager.update`).
  static Future<ImageClassifier> load(InstalledModel model, {int threads = 2}) async =>
      ImageClassifier.fromFile(model.file, model.manifest, format: model.format, threads: threads);

  /// Loads a classifier file described by [manifest].
  factory ImageClassifier.fromFile(
    File file,
    Manifest manifest, {
    ModelFormat format = ModelFormat.float32,
    int threads = 2,
  }) =>
      ImageClassifier._(
        interpreterFromFile(file, threads: threads),
        manifest,
        format,
      );

  /// A classifier from model bytes in memory.
  factory ImageClassifier.fromBuffer(
    Uint8List modelBytes,
    Manifest manifest, {
    ModelFormat format = ModelFormat.float32,
    int threads = 2,
  }) =>
      ImageClassifier._(
        interpreterFromBytes(modelBytes, threads: threads),
        manifest,
        format,
      );

  final Interpreter _interpreter;

  /// Labels, input spec and tensor details.
  final Manifest manifest;

  /// Which export this is (float32, float16, dynamic-int8, int8...).
  final ModelFormat format;

  /// The preprocessing the model expects.
  final ImagePreprocessor preprocessor;

  late final TensorType _inputType;
  late final TensorType _outputType;
  TensorQuantization? _inputQuant;
  TensorQuantization? _outputQuant;
  late final bool _outputIsLogits;

  /// Class labels in output order.
  List<String> get labels => manifest.labels;

  /// The input tensor's element type.
  TensorType get inputType => _inputType;

  void _inspect() {
    final spec = manifest.inputSpec;
    final input = _interpreter.getInputTensor(0);
    final output = _interpreter.getOutputTensor(0);
    final shape = input.shape;
    final channels = spec.colorMode == ColorMode.grayscale ? 1 : 3;
    if (shape.length != 4 ||
        shape[1] != spec.height ||
        shape[2] != spec.width ||
        shape[3] != channels) {
      throw StateError('the model input has shape $shape but the manifest says '
          '[1, ${spec.height}, ${spec.width}, $channels]');
    }
    if (shape[0] != 1) {
      _interpreter.resizeInputTensor(0, [1, spec.height, spec.width, channels]);
      _interpreter.allocateTensors();
    }
    _inputType = input.type;
    _outputType = output.type;
    final details = manifest.json['formats'];
    final formatJson = details is Map<String, Object?> ? details[format.wireName] : null;
    Object? tensorJson(String key) =>
        formatJson is Map<String, Object?> ? (formatJson[key] as Map<String, Object?>?)?['quantization'] : null;
    // The interpreter is the authority; the manifest fills in if it has none.
    _inputQuant = _quantOf(input) ?? TensorQuantization.fromJson(tensorJson('input'));
    _outputQuant = _quantOf(output) ?? TensorQuantization.fromJson(tensorJson('output'));
    if (_isInteger(_inputType) && _inputQuant == null) {
      throw StateError('the $_inputType model input has no quantization parameters');
    }
    final outputJson = manifest.json['output'];
    _outputIsLogits = outputJson is Map<String, Object?> && outputJson['kind'] == 'logits';
  }

  static TensorQuantization? _quantOf(Tensor tensor) {
    final p = tensor.params;
    return p.scale == 0 ? null : TensorQuantization(p.scale, p.zeroPoint);
  }

  static bool _isInteger(TensorType type) => type == TensorType.uint8 || type == TensorType.int8;

  /// Top-[topK] predictions for [image]: encoded bytes (JPEG, PNG...), a
  /// decoded `package:image` [img.Image] (e.g. a converted camera frame) or
  /// [ImagePixels].
  List<Prediction> classify(Object image, {int topK = 3}) =>
      topPredictions(probabilities(image), labels, k: topK);

  /// Class probabilities for [image] (see [classify] for what it may be).
  Float32List probabilities(Object image) {
    final spec = manifest.inputSpec;
    final pixels = switch (image) {
      final ImagePixels p when p.width == spec.width && p.height == spec.height => p,
      final ImagePixels p => resizeBilinear(p, spec.width, spec.height),
      final img.Image decoded => preprocessor.fromImage(decoded),
      final List<int> bytes => preprocessor.decode(bytes),
      _ => throw ArgumentError.value(image, 'image', 'expected bytes, an Image or ImagePixels'),
    };
    _interpreter.runInference([_inputBytes(pixels)]);
    return _readOutput();
  }

  Uint8List _inputBytes(ImagePixels pixels) {
    final values = preprocessor.normalize(pixels);
    switch (_inputType) {
      case TensorType.float32:
        return values.buffer.asUint8List(values.offsetInBytes, values.lengthInBytes);
      case TensorType.uint8:
        return Uint8List.fromList(quantizeValues(values, _inputQuant!));
      case TensorType.int8:
        final q = Int8List.fromList(quantizeValues(values, _inputQuant!, min: -128, max: 127));
        return q.buffer.asUint8List();
      default:
        throw StateError('unsupported model input type $_inputType');
    }
  }

  Float32List _readOutput() {
    // Copy: the interpreter reuses the tensor's memory.
    final raw = Uint8List.fromList(_interpreter.getOutputTensor(0).data);
    final Float32List scores;
    switch (_outputType) {
      case TensorType.float32:
        scores = raw.buffer.asFloat32List();
      case TensorType.uint8:
        scores = _outputQuant == null ? _unscaled(raw) : dequantizeValues(raw, _outputQuant!);
      case TensorType.int8:
        final signed = raw.buffer.asInt8List();
        scores = _outputQuant == null ? _unscaled(signed) : dequantizeValues(signed, _outputQuant!);
      default:
        throw StateError('unsupported model output type $_outputType');
    }
    return _outputIsLogits ? softmax(scores) : scores;
  }

  static Float32List _unscaled(List<int> raw) =>
      Float32List.fromList([for (final v in raw) v.toDouble()]);

  /// Releases the interpreter.
  void close() => _interpreter.close();
}
