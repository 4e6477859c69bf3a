/// Camera frames to RGB images, for classifying a live camera stream.
///
/// `package:camera` delivers YUV 4:2:0 (Android; iOS bi-planar), NV21 or BGRA
/// (iOS) planes. These converters take the planes' bytes and strides, so the
/// package does not depend on the camera plugin. Frames are subsampled while
/// converting: the model input is small (often 96–224 px), so converting every
/// pixel of a 720p frame would only waste time on the UI isolate.
library;

import 'dart:typed_data';

import 'package:image/image.dart' as img;

/// The largest pixel step that keeps the shorter side at least [minShortSide].
int subsampleStep(int width, int height, int minShortSide) {
  final shortSide = width < height ? width : height;
  if (minShortSide <= 0 || shortSide <= minShortSide) return 1;
  return shortSide ~/ minShortSide;
}

/// YUV 4:2:0 (I420 or semi-planar, full range as Android cameras deliver it)
/// to RGB, reading every [step]-th pixel.
img.Image yuv420ToRgb({
  required int width,
  required int height,
  required Uint8List y,
  required Uint8List u,
  required Uint8List v,
  required int yRowStride,
  required int uvRowStride,
  required int uvPixelStride,
  int step = 1,
}) {
  final outW = width ~/ step;
  final outH = height ~/ step;
  final out = Uint8List(outW * outH * 3);
  var o = 0;
  for (var oy = 0; oy < outH; oy++) {
    final sy = oy * step;
    final yRow = sy * yRowStride;
    final uvRow = (sy >> 1) * uvRowStride;
    for (var ox = 0; ox < outW; ox++) {
      final sx = ox * step;
      final uvIndex = uvRow + (sx >> 1) * uvPixelStride;
      // Short last rows happen on some devices; treat missing chroma as grey.
      final cb = uvIndex < u.length ? u[uvIndex] : 128;
      final cr = uvIndex < v.length ? v[uvIndex] : 128;
      o = _writeYuv(out, o, y[yRow + sx], cb, cr);
    }
  }
  return _rgbImage(outW, outH, out);
}

/// NV21 (Y plane, then interleaved V/U at half resolution) to RGB.
img.Image nv21ToRgb({
  required int width,
  required int height,
  required Uint8List bytes,
  int? rowStride,
  int step = 1,
}) {
  final stride = rowStride ?? width;
  final uvStart = stride * height;
  final outW = width ~/ step;
  final outH = height ~/ step;
  final out = Uint8List(outW * outH * 3);
  var o = 0;
  for (var oy = 0; oy < outH; oy++) {
    final sy = oy * step;
    final uvRow = uvStart + (sy >> 1) * stride;
    for (var ox = 0; ox < outW; ox++) {
      final sx = ox * step;
      final uvIndex = uvRow + (sx & ~1);
      final cr = uvIndex < bytes.length ? bytes[uvIndex] : 128;
      final cb = uvIndex + 1 < bytes.length ? bytes[uvIndex + 1] : 128;
      o = _writeYuv(out, o, bytes[sy * stride + sx], cb, cr);
    }
  }
  return _rgbImage(outW, outH, out);
}

/// 32-bit BGRA (iOS) to RGB, dropping alpha.
img.Image bgra8888ToRgb({
  required int width,
  required int height,
  required Uint8List bytes,
  required int rowStride,
  int step = 1,
}) {
  final outW = width ~/ step;
  final outH = height ~/ step;
  final out = Uint8List(outW * outH * 3);
  var o = 0;
  for (var oy = 0; oy < outH; oy++) {
    final row = oy * step * rowStride;
    for (var ox = 0; ox < outW; ox++) {
      final i = row + ox * step * 4;
      out[o++] = bytes[i + 2];
      out[o++] = bytes[i + 1];
      out[o++] = bytes[i];
    }
  }
  return _rgbImage(outW, outH, out);
}

// BT.601 full-range YCbCr -> RGB in 10-bit fixed point.
int _writeYuv(Uint8List out, int o, int yValue, int cb, int cr) {
  final d = cb - 128;
  final e = cr - 128;
  final y1024 = yValue << 10;
  out[o] = _clamp((y1024 + 1436 * e) >> 10);
  out[o + 1] = _clamp((y1024 - 352 * d - 731 * e) >> 10);
  out[o + 2] = _clamp((y1024 + 1815 * d) >> 10);
  return o + 3;
}

int _clamp(int v) => v < 0 ? 0 : (v > 255 ? 255 : v);

img.Image _rgbImage(int width, int height, Uint8List rgb) =>
    img.Image.fromBytes(width: width, height: height, bytes: rgb.buffer, numChannels: 3);
