/// On-device object detection with tflite_flutter, driven by the manifest.
///
/// An `object-detection` model takes an image like an image classifier of the
/// same input spec and does its own post-processing (decoding and non-maximum
/// suppression are inside the model). Its four float32 outputs are listed in
/// the manifest's `outputs` with a `role` each, in this order by default (the
/// SSD post-process convention):
///
/// * `boxes` `[1, N, 4]`: `y_min, x_min, y_max, x_max`, normalised 0..1 to the
///   model input;
/// * `classes` `[1, N]`: the class index into the manifest `labels`;
/// * `scores` `[1, N]`: confidence, high to low;
/// * `count` `[1]`: how many rows are detections.
///
/// [ObjectDetector.detect] maps the boxes back to pixels of the image it was
/// given, undoing the resize it did: [ResizeMode.stretch] (the server's own
/// preprocessing, straight to the model size, what the model was trained on)
/// or [ResizeMode.letterbox] (scaled to fit, padded with grey).
library;

import 'dart:io';
import 'dart:math' as math;
import 'dart:typed_data';

import 'package:image/image.dart' as img;
import 'package:tflite_flutter/tflite_flutter.dart';

import 'inference.dart';
import 'model_manager.dart';
import 'models.dart';
import 'preprocess.dart';
import 'tflite_memory.dart';

/// A rectangle in pixels of an image: left, top, right, bottom (x right, y down).
class BoxRect {
  /// A rectangle from its edges.
  const BoxRect(this.left, this.top, this.right, this.bottom);

  /// Left edge (x of the top-left corner).
  final double left;

  /// Top edge (y of the top-left corner).
  final double top;

  /// Right edge.
  final double right;

  /// Bottom edge.
  final double bottom;

  /// `right - left`.
  double get width => right - left;

  /// `bottom - top`.
  double get height => bottom - top;

  /// `{"left", "top", "right", "bottom"}`.
  Map<String, double> toJson() => {'left': left, 'top': top, 'right': right, 'bottom': bottom};

  @override
  String toString() => 'BoxRect($left, $top, $right, $bottom)';
}

/// One object the detector found.
class Detection {
  /// A detection of class [index] ([label]) with [score] at [box].
  const Detection({required this.label, required this.index, required this.score, required this.box});

  /// The class name (`class_<i>` when the manifest has fewer labels).
  final String label;

  /// The class index into the manifest labels.
  final int index;

  /// Confidence 0..1.
  final double score;

  /// Where, in pixels of the image passed to [ObjectDetector.detect].
  final BoxRect box;

  @override
  String toString() => 'Detection($label, ${score.toStringAsFixed(3)}, $box)';
}

/// How an image is fitted into the model's input.
enum ResizeMode {
  /// Straight to the model size, aspect ratio not kept: what the server does
  /// when it trains and evaluates, so the default.
  stretch,

  /// Scaled to fit inside the model size with the aspect ratio kept, centred,
  /// the rest filled with grey (114); boxes in the padding are clipped away.
  letterbox,
}

/// The affine map between the model input and the original image: the image,
/// scaled by ([scaleX], [scaleY]), sits at ([padX], [padY]) in the model input
/// (all in model-input pixels).
class InputMapping {
  /// A mapping from its parts.
  const InputMapping({
    required this.imageWidth,
    required this.imageHeight,
    required this.modelWidth,
    required this.modelHeight,
    required this.scaleX,
    required this.scaleY,
    this.padX = 0,
    this.padY = 0,
  });

  /// The mapping [mode] makes for an `imageWidth x imageHeight` image and a
  /// `modelWidth x modelHeight` input. Letterbox sizes are rounded to whole
  /// pixels, as the padded image is drawn.
  factory InputMapping.forImage(
    int imageWidth,
    int imageHeight,
    int modelWidth,
    int modelHeight, {
    ResizeMode mode = ResizeMode.stretch,
  }) {
    if (imageWidth <= 0 || imageHeight <= 0) {
      throw ArgumentError('the image has no pixels (${imageWidth}x$imageHeight)');
    }
    if (mode == ResizeMode.stretch) {
      return InputMapping(
        imageWidth: imageWidth,
        imageHeight: imageHeight,
        modelWidth: modelWidth,
        modelHeight: modelHeight,
        scaleX: modelWidth / imageWidth,
        scaleY: modelHeight / imageHeight,
      );
    }
    final (w, h) = letterboxSize(imageWidth, imageHeight, modelWidth, modelHeight);
    return InputMapping(
      imageWidth: imageWidth,
      imageHeight: imageHeight,
      modelWidth: modelWidth,
      modelHeight: modelHeight,
      scaleX: w / imageWidth,
      scaleY: h / imageHeight,
      padX: (modelWidth - w) ~/ 2,
      padY: (modelHeight - h) ~/ 2,
    );
  }

  /// Size of the original image in pixels.
  final int imageWidth;

  /// Height of the original image in pixels.
  final int imageHeight;

  /// Width of the model input.
  final int modelWidth;

  /// Height of the model input.
  final int modelHeight;

  /// Model pixels per image pixel, horizontally.
  final double scaleX;

  /// Model pixels per image pixel, vertically.
  final double scaleY;

  /// Left padding in model pixels (letterbox).
  final int padX;

  /// Top padding in model pixels (letterbox).
  final int padY;

  /// A box the model gave (normalised `y_min, x_min, y_max, x_max` of its
  /// input) in pixels of the original image, clipped to it.
  BoxRect toImage(double yMin, double xMin, double yMax, double xMax) {
    double x(double v) => ((v * modelWidth - padX) / scaleX).clamp(0.0, imageWidth.toDouble());
    double y(double v) => ((v * modelHeight - padY) / scaleY).clamp(0.0, imageHeight.toDouble());
    return BoxRect(x(xMin), y(yMin), x(xMax), y(yMax));
  }
}

/// The scaled image size inside a letterbox: the largest that fits, rounded,
/// at least one pixel.
(int, int) letterboxSize(int imageWidth, int imageHeight, int modelWidth, int modelHeight) {
  final s = math.min(modelWidth / imageWidth, modelHeight / imageHeight);
  return (
    math.max(1, math.min(modelWidth, (imageWidth * s).round())),
    math.max(1, math.min(modelHeight, (imageHeight * s).round())),
  );
}

/// The detections in the four output tensors (flattened): rows up to
/// `count` with a score of at least [minScore], boxes mapped by [mapping];
/// boxes with no area in the image (e.g. all in the letterbox padding) are
/// dropped. Rows keep the model's order (highest score first).
List<Detection> decodeDetections({
  required List<double> boxes,
  required List<double> classes,
  required List<double> scores,
  required double count,
  required List<String> labels,
  required InputMapping mapping,
  double minScore = 0,
}) {
  final n = math.min(count.round(), math.min(scores.length, math.min(classes.length, boxes.length ~/ 4)));
  final out = <Detection>[];
  for (var i = 0; i < n; i++) {
    final score = scores[i];
    if (!(score >= minScore)) continue;
    final index = classes[i].round();
    final box = mapping.toImage(boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]);
    if (box.width <= 0 || box.height <= 0) continue;
    out.add(Detection(
      label: index >= 0 && index < labels.length ? labels[index] : 'class_$index',
      index: index,
      score: score,
      box: box,
    ));
  }
  return out;
}

/// [src] scaled into a `width x height` canvas with its aspect ratio kept,
/// centred, the rest [fill] grey (see [ResizeMode.letterbox]).
ImagePixels letterboxPixels(ImagePixels src, int width, int height, {int fill = 114}) {
  final (w, h) = letterboxSize(src.width, src.height, width, height);
  final scaled = (w == src.width && h == src.height) ? src : resizeBilinear(src, w, h);
  final c = src.channels;
  final out = Uint8List(width * height * c)..fillRange(0, width * height * c, fill);
  final padX = (width - w) ~/ 2;
  final padY = (height - h) ~/ 2;
  for (var y = 0; y < h; y++) {
    final from = y * w * c;
    out.setRange(((y + padY) * width + padX) * c, ((y + padY) * width + padX + w) * c, scaled.data, from);
  }
  return ImagePixels(width: width, height: height, channels: c, data: out);
}

/// The four output roles, in the default (contract) order.
const List<String> detectionOutputRoles = ['boxes', 'classes', 'scores', 'count'];

/// Output tensor index per role: from the manifest's `outputs` (`name` and
/// `role` of each) matched to the interpreter's tensor [names]; a role the
/// manifest does not name takes its position in [detectionOutputRoles].
Map<String, int> detectionOutputIndex(Object? manifestOutputs, List<String> names) {
  final byRole = <String, int>{};
  if (manifestOutputs is List<Object?>) {
    for (var i = 0; i < manifestOutputs.length; i++) {
      final spec = manifestOutputs[i];
      if (spec is! Map<String, Object?>) continue;
      final role = spec['role'];
      if (role is! String || !detectionOutputRoles.contains(role)) continue;
      final at = names.indexOf('${spec['name']}');
      byRole[role] = at >= 0 ? at : i;
    }
  }
  for (var i = 0; i < detectionOutputRoles.length; i++) {
    byRole.putIfAbsent(detectionOutputRoles[i], () => i);
  }
  return byRole;
}

/// Finds objects in images with a downloaded `.tflite` detector.
///
/// ```dart
/// final detector = await ObjectDetector.load(installed);
/// for (final d in detector.detect(jpegBytes)) {
///   print('${d.label} ${d.score} at ${d.box}');
/// }
/// ```
///
/// Inference runs synchronously on the calling isolate; for a live camera
/// preview run it in a background isolate or a few frames per second.
class ObjectDetector {
  ObjectDetector._(this._interpreter, this.manifest, this.format, {bool emulateJpegDraft = true})
      : preprocessor = ImagePreprocessor(manifest.inputSpec, emulateJpegDraft: emulateJpegDraft) {
    _inspect();
  }

  /// Loads an installed model (see `ModelManager.update`).
  static Future<ObjectDetector> load(InstalledModel model, {int threads = 2}) async =>
      ObjectDetector.fromFile(model.file, model.manifest, format: model.format, threads: threads);

  /// Loads a detector file described by [manifest].
  factory ObjectDetector.fromFile(
    File file,
    Manifest manifest, {
    ModelFormat format = ModelFormat.float32,
    int threads = 2,
  }) =>
      ObjectDetector._(interpreterFromFile(file, threads: threads), manifest, format);

  /// A detector from model bytes in memory.
  factory ObjectDetector.fromBuffer(
    Uint8List modelBytes,
    Manifest manifest, {
    ModelFormat format = ModelFormat.float32,
    int threads = 2,
  }) =>
      ObjectDetector._(interpreterFromBytes(modelBytes, threads: threads), manifest, format);

  final Interpreter _interpreter;

  /// Labels, input spec, outputs and NMS settings.
  final Manifest manifest;

  /// Which export this is (float32, float16, dynamic-int8, int8).
  final ModelFormat format;

  /// The preprocessing the model expects (the server's).
  final ImagePreprocessor preprocessor;

  late final TensorType _inputType;
  TensorQuantization? _inputQuant;
  late final Map<String, int> _outputs;

  /// The score threshold the model was exported with (manifest `task_spec`).
  late final double modelScoreThreshold;

  /// Class labels, by class index.
  List<String> get labels => manifest.labels;

  void _inspect() {
    final spec = manifest.inputSpec;
    final input = _interpreter.getInputTensor(0);
    final shape = input.shape;
    final channels = spec.colorMode == ColorMode.grayscale ? 1 : 3;
    if (shape.length != 4 || shape[1] != spec.height || shape[2] != spec.width || shape[3] != channels) {
      throw StateError('the model input has shape $shape but the manifest says '
          '[1, ${spec.height}, ${spec.width}, $channels]');
    }
    _inputType = input.type;
    final p = input.params;
    final details = manifest.json['formats'];
    final formatJson = details is Map<String, Object?> ? details[format.wireName] : null;
    final inputJson = formatJson is Map<String, Object?> ? formatJson['input'] : null;
    _inputQuant = p.scale != 0
        ? TensorQuantization(p.scale, p.zeroPoint)
        : TensorQuantization.fromJson(inputJson is Map<String, Object?> ? inputJson['quantization'] : null);
    if ((_inputType == TensorType.uint8 || _inputType == TensorType.int8) && _inputQuant == null) {
      throw StateError('the $_inputType model input has no quantization parameters');
    }
    final tensors = _interpreter.getOutputTensors();
    if (tensors.length != 4) {
      throw StateError('a detector has 4 outputs (boxes, classes, scores, count); this model has ${tensors.length}');
    }
    _outputs = detectionOutputIndex(manifest.json['outputs'], [for (final t in tensors) t.name]);
    for (final role in detectionOutputRoles) {
      if (tensors[_outputs[role]!].type != TensorType.float32) {
        throw StateError('the $role output is ${tensors[_outputs[role]!].type}, not float32');
      }
    }
    final taskSpec = manifest.json['task_spec'];
    final threshold = taskSpec is Map<String, Object?> ? taskSpec['score_threshold'] : null;
    modelScoreThreshold = threshold is num ? threshold.toDouble() : 0.0;
  }

  /// The objects in [image]: encoded bytes (JPEG, PNG...), a decoded
  /// `package:image` [img.Image] (e.g. a converted camera frame) or
  /// [ImagePixels] in the model's colour mode; boxes in its pixels.
  ///
  /// [minScore] drops detections below it (the model already drops those
  /// under its own threshold, [modelScoreThreshold]).
  List<Detection> detect(Object image, {ResizeMode mode = ResizeMode.stretch, double minScore = 0}) {
    final spec = manifest.inputSpec;
    final (pixels, mapping) = _modelInput(image, mode);
    _interpreter.runInference([_inputBytes(pixels)]);
    Float32List read(String role) =>
        // Copy: the interpreter reuses the tensor's memory.
        Uint8List.fromList(_interpreter.getOutputTensor(_outputs[role]!).data).buffer.asFloat32List();
    assert(pixels.width == spec.width && pixels.height == spec.height);
    return decodeDetections(
      boxes: read('boxes'),
      classes: read('classes'),
      scores: read('scores'),
      count: read('count').first,
      labels: labels,
      mapping: mapping,
      minScore: minScore,
    );
  }

  /// The model input for [image] and how it maps back. Stretching goes
  /// through the preprocessor (the server's pipeline, JPEG draft included);
  /// letterboxing scales the oriented full-size pixels itself.
  (ImagePixels, InputMapping) _modelInput(Object image, ResizeMode mode) {
    final spec = manifest.inputSpec;
    final channels = preprocessor.channels;
    InputMapping mapFor(int w, int h) => InputMapping.forImage(w, h, spec.width, spec.height, mode: mode);
    if (image is ImagePixels) {
      if (image.channels != channels) {
        throw ArgumentError.value(image, 'image', 'has ${image.channels} channels; the model takes $channels');
      }
      final pixels = mode == ResizeMode.letterbox
          ? letterboxPixels(image, spec.width, spec.height)
          : (image.width == spec.width && image.height == spec.height
              ? image
              : resizeBilinear(image, spec.width, spec.height));
      return (pixels, mapFor(image.width, image.height));
    }
    final img.Image oriented;
    var draft = 1;
    switch (image) {
      case final img.Image decoded:
        oriented = _oriented(decoded);
      case final List<int> bytes:
        final data = bytes is Uint8List ? bytes : Uint8List.fromList(bytes);
        img.Image? decoded;
        try {
          decoded = img.decodeImage(data);
        } on Object catch (error) {
          throw FormatException('the bytes are not a supported image ($error)');
        }
        if (decoded == null) throw const FormatException('the bytes are not a supported image');
        oriented = _oriented(decoded);
        if (preprocessor.emulateJpegDraft && isJpegData(data)) {
          draft = jpegDraftScale(oriented.width, oriented.height, spec.width, spec.height);
        }
      default:
        throw ArgumentError.value(image, 'image', 'expected bytes, an Image or ImagePixels');
    }
    final mapping = mapFor(oriented.width, oriented.height);
    if (mode == ResizeMode.stretch) return (preprocessor.fromImage(oriented, draftScale: draft), mapping);
    return (letterboxPixels(convertColor(oriented, channels), spec.width, spec.height), mapping);
  }

  static img.Image _oriented(img.Image image) {
    final ifd = image.exif.imageIfd;
    return ifd.hasOrientation && ifd.orientation != 1 ? img.bakeOrientation(image) : image;
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

  /// Releases the interpreter.
  void close() => _interpreter.close();
}
