/// Client-side preprocessing that reproduces the server's pipeline
/// (`mobiletrain/compute/preprocess.py`) so the phone feeds a model exactly
/// what it was trained and evaluated on.
///
/// The server decodes with Pillow, applies the EXIF orientation, converts to
/// RGB or 8-bit grayscale (ITU-R 601-2 luma in fixed point), resizes straight
/// to `width x height` with Pillow's bilinear filter (no aspect ratio kept, no
/// crop), then computes `pixel * scale + offset` in float32. Everything after
/// decoding is ported here bit for bit; decoding itself uses `package:image`.
library;

import 'dart:math' as math;
import 'dart:typed_data';

import 'package:image/image.dart' as img;

import 'models.dart';

/// Decoded pixels, row-major `height x width x channels`, one byte per value.
class ImagePixels {
  /// Wraps [data]; its length must be `width * height * channels`.
  ImagePixels({
    required this.width,
    required this.height,
    required this.channels,
    required this.data,
  }) {
    if (data.length != width * height * channels) {
      throw ArgumentError.value(
        data.length,
        'data',
        'expected ${width * height * channels} bytes for '
            '${width}x${height}x$channels',
      );
    }
  }

  /// Width in pixels.
  final int width;

  /// Height in pixels.
  final int height;

  /// 3 for RGB, 1 for grayscale.
  final int channels;

  /// The values, `(y * width + x) * channels + channel`.
  final Uint8List data;
}

/// Turns photos into model input as described by a project's [InputSpec].
///
/// ```dart
/// final pre = ImagePreprocessor(project.inputSpec);
/// final input = pre.toInput(jpegBytes);        // Float32List, H*W*C
/// final upload = pre.prepareForUpload(jpegBytes); // smaller file to send
/// ```
class ImagePreprocessor {
  /// A preprocessor for [spec].
  ///
  /// [emulateJpegDraft] mimics the server's JPEG draft mode (Pillow lets
  /// libjpeg decode large photos at 1/2, 1/4 or 1/8 scale first) with a box
  /// reduction by the same factor; it is also much faster for camera photos.
  ImagePreprocessor(this.spec, {this.emulateJpegDraft = true});

  /// The model input contract.
  final InputSpec spec;

  /// Whether large JPEGs are box-reduced like the server's draft decoding.
  final bool emulateJpegDraft;

  /// Number of channels of the model input.
  int get channels => spec.colorMode == ColorMode.grayscale ? 1 : 3;

  /// Decodes encoded image bytes (JPEG, PNG, WebP, GIF, BMP, TIFF...) into
  /// pixels of the spec's size and colour mode.
  ///
  /// Throws [FormatException] when the bytes are not an image.
  ImagePixels decode(List<int> encoded) {
    final bytes = encoded is Uint8List ? encoded : Uint8List.fromList(encoded);
    img.Image? image;
    try {
      image = img.decodeImage(bytes);
    } on Object catch (error) {
      // Decoders throw RangeError and friends on truncated or foreign data.
      throw FormatException('the bytes are not a supported image ($error)');
    }
    if (image == null) {
      throw const FormatException('the bytes are not a supported image');
    }
    final draft = emulateJpegDraft && isJpegData(bytes)
        ? jpegDraftScale(image.width, image.height, spec.width, spec.height)
        : 1;
    return fromImage(image, draftScale: draft);
  }

  /// Pixels of an already decoded [image] (e.g. a camera frame) in the spec's
  /// size and colour mode.
  ///
  /// [draftScale] > 1 first averages `draftScale x draftScale` blocks (see
  /// [emulateJpegDraft]); leave it at 1 for frames that are not JPEG files.
  ImagePixels fromImage(img.Image image, {int draftScale = 1}) {
    var oriented = image;
    // The JPEG decoder already applies the EXIF orientation; other formats
    // may still carry one (Pillow's exif_transpose handles every format).
    final ifd = image.exif.imageIfd;
    if (ifd.hasOrientation && ifd.orientation != 1) {
      oriented = img.bakeOrientation(image);
    }
    var pixels = convertColor(oriented, channels);
    if (draftScale > 1) {
      pixels = reduceBox(pixels, draftScale);
    }
    if (pixels.width != spec.width || pixels.height != spec.height) {
      pixels = resizeBilinear(pixels, spec.width, spec.height);
    }
    return pixels;
  }

  /// `pixel * scale + offset` in float32, the way numpy computes it.
  Float32List normalize(ImagePixels pixels) {
    final (scale, offset) = scaleOffset(spec);
    final out = Float32List(pixels.data.length);
    final s = _f32(scale);
    final o = _f32(offset);
    final data = pixels.data;
    for (var i = 0; i < data.length; i++) {
      // Storing rounds to float32 after each operation, like numpy does.
      out[i] = data[i] * s;
      if (o != 0) out[i] = out[i] + o;
    }
    return out;
  }

  /// [decode] then [normalize]: the float model input, `H*W*C` values.
  Float32List toInput(List<int> encoded) => normalize(decode(encoded));

  /// A small file to upload: the image converted and resized like [decode].
  ///
  /// Mirrors the Python SDK: PNG input and grayscale specs give PNG (lossless),
  /// other photos give JPEG at [jpegQuality].
  Uint8List prepareForUpload(List<int> encoded, {int jpegQuality = 95}) {
    final bytes = encoded is Uint8List ? encoded : Uint8List.fromList(encoded);
    final pixels = decode(bytes);
    final image = imageFromPixels(pixels);
    if (isPngData(bytes) || pixels.channels == 1) {
      return img.encodePng(image);
    }
    return img.encodeJpg(image, quality: jpegQuality);
  }
}

/// `(scale, offset)` with `input = pixel * scale + offset` for [spec].
///
/// Uses the spec's own numbers and falls back to its [Normalization] when the
/// scale is missing (unspecified means the server default, zero-one).
(double, double) scaleOffset(InputSpec spec) {
  if (spec.scale != 0) return (spec.scale, spec.offset);
  return switch (spec.normalization) {
    Normalization.minusOneOne => (1.0 / 127.5, -1.0),
    Normalization.raw => (1.0, 0.0),
    Normalization.zeroOne || Normalization.unspecified => (1.0 / 255.0, 0.0),
  };
}

/// Reads an input spec object (`width`, `height`, `color_mode`,
/// `normalization`, `scale`, `offset`) as the server writes it.
InputSpec inputSpecFromJson(Map<String, Object?> json) {
  final colorMode = switch (json['color_mode']) {
    'rgb' => ColorMode.rgb,
    'grayscale' => ColorMode.grayscale,
    _ => ColorMode.unspecified,
  };
  final normalization = switch (json['normalization']) {
    'zero-one' => Normalization.zeroOne,
    'minus-one-one' => Normalization.minusOneOne,
    'raw' => Normalization.raw,
    _ => Normalization.unspecified,
  };
  final spec = InputSpec(
    width: _jsonInt(json['width']),
    height: _jsonInt(json['height']),
    colorMode: colorMode,
    normalization: normalization,
    channels: json['channels'] == null
        ? (colorMode == ColorMode.grayscale ? 1 : 3)
        : _jsonInt(json['channels']),
    scale: (json['scale'] as num?)?.toDouble() ?? 0,
    offset: (json['offset'] as num?)?.toDouble() ?? 0,
  );
  if (spec.scale != 0) return spec;
  final (scale, offset) = scaleOffset(spec);
  return InputSpec(
    width: spec.width,
    height: spec.height,
    colorMode: spec.colorMode,
    normalization: spec.normalization,
    channels: spec.channels,
    scale: scale,
    offset: offset,
  );
}

/// The JSON form of [spec], as the server writes it.
Map<String, Object?> inputSpecToJson(InputSpec spec) => {
      'width': spec.width,
      'height': spec.height,
      'channels': spec.channels,
      'color_mode': switch (spec.colorMode) {
        ColorMode.grayscale => 'grayscale',
        _ => 'rgb',
      },
      'normalization': switch (spec.normalization) {
        Normalization.minusOneOne => 'minus-one-one',
        Normalization.raw => 'raw',
        _ => 'zero-one',
      },
      'scale': spec.scale,
      'offset': spec.offset,
    };

int _jsonInt(Object? value) => switch (value) {
      final int v => v,
      final num v => v.toInt(),
      final String v => int.parse(v),
      _ => throw FormatException('expected an integer, got $value'),
    };

final Float32List _f32Buffer = Float32List(1);

/// [value] rounded to the nearest float32.
double _f32(double value) {
  _f32Buffer[0] = value;
  return _f32Buffer[0];
}

/// True when [bytes] start with the JPEG SOI marker.
bool isJpegData(List<int> bytes) =>
    bytes.length > 2 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;

/// True when [bytes] start with the PNG signature.
bool isPngData(List<int> bytes) =>
    bytes.length > 8 &&
    bytes[0] == 0x89 &&
    bytes[1] == 0x50 &&
    bytes[2] == 0x4E &&
    bytes[3] == 0x47;

/// The scale Pillow's JPEG draft mode picks on the server: the largest of
/// 8, 4, 2, 1 not above `min(w // side, h // side)` with
/// `side = 2 * max(targetWidth, targetHeight)`.
int jpegDraftScale(int width, int height, int targetWidth, int targetHeight) {
  final side = 2 * math.max(targetWidth, targetHeight);
  final scale = math.min(width ~/ side, height ~/ side);
  for (final s in const [8, 4, 2]) {
    if (scale >= s) return s;
  }
  return 1;
}

/// Pillow's RGB to `L` conversion (`L24` in libImaging/Convert.c).
int pillowLuma(int r, int g, int b) => (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;

/// The pixels of [image] with [channels] (3: RGB, 1: grayscale) as Pillow's
/// `convert("RGB")` / `convert("L")` gives them; alpha is dropped, not blended.
ImagePixels convertColor(img.Image image, int channels) {
  final w = image.width;
  final h = image.height;
  final out = Uint8List(w * h * channels);
  final sourceGray = !image.hasPalette && image.numChannels <= 2;
  if (image.format == img.Format.uint8 && !image.hasPalette) {
    final src = image.toUint8List();
    final nc = image.numChannels;
    final stride = image.rowStride;
    var o = 0;
    for (var y = 0; y < h; y++) {
      var i = y * stride;
      for (var x = 0; x < w; x++, i += nc) {
        if (sourceGray) {
          final v = src[i];
          for (var c = 0; c < channels; c++) {
            out[o++] = v;
          }
        } else if (channels == 3) {
          out[o++] = src[i];
          out[o++] = src[i + 1];
          out[o++] = src[i + 2];
        } else {
          out[o++] = pillowLuma(src[i], src[i + 1], src[i + 2]);
        }
      }
    }
  } else {
    // Palette, 16-bit, float or sub-byte images: go through normalised values.
    for (final p in image) {
      final r = _to8(p.rNormalized);
      final g = sourceGray ? r : _to8(p.gNormalized);
      final b = sourceGray ? r : _to8(p.bNormalized);
      final o = (p.y * w + p.x) * channels;
      if (channels == 3) {
        out[o] = r;
        out[o + 1] = g;
        out[o + 2] = b;
      } else {
        out[o] = sourceGray ? r : pillowLuma(r, g, b);
      }
    }
  }
  return ImagePixels(width: w, height: h, channels: channels, data: out);
}

int _to8(num normalized) => _byte(normalized * 255);

int _byte(num value) {
  final v = value.round();
  return v < 0 ? 0 : (v > 255 ? 255 : v);
}

/// Averages `factor x factor` blocks (partial blocks at the right and bottom
/// edges average what they cover); the size becomes `ceil(size / factor)`.
ImagePixels reduceBox(ImagePixels src, int factor) {
  if (factor <= 1) return src;
  final c = src.channels;
  final ow = (src.width + factor - 1) ~/ factor;
  final oh = (src.height + factor - 1) ~/ factor;
  final out = Uint8List(ow * oh * c);
  final sums = List<int>.filled(c, 0);
  for (var by = 0; by < oh; by++) {
    final y0 = by * factor;
    final y1 = math.min(y0 + factor, src.height);
    for (var bx = 0; bx < ow; bx++) {
      final x0 = bx * factor;
      final x1 = math.min(x0 + factor, src.width);
      sums.fillRange(0, c, 0);
      for (var y = y0; y < y1; y++) {
        var i = (y * src.width + x0) * c;
        for (var x = x0; x < x1; x++) {
          for (var k = 0; k < c; k++) {
            sums[k] += src.data[i++];
          }
        }
      }
      final n = (y1 - y0) * (x1 - x0);
      final o = (by * ow + bx) * c;
      for (var k = 0; k < c; k++) {
        out[o + k] = (sums[k] + n ~/ 2) ~/ n;
      }
    }
  }
  return ImagePixels(width: ow, height: oh, channels: c, data: out);
}

// --- Pillow's bilinear resampling (libImaging/Resample.c), 8 bits per channel ---

const int _precisionBits = 32 - 8 - 2;

/// Filter taps of one output pixel: the first source index and the weights.
class _Taps {
  _Taps(this.bounds, this.weights, this.ksize);

  /// `[start0, count0, start1, count1, ...]` per output pixel.
  final Int32List bounds;

  /// `ksize` fixed-point weights per output pixel.
  final Int32List weights;
  final int ksize;
}

_Taps _precompute(int inSize, int outSize) {
  // Support of the triangle filter, widened when downscaling (antialiasing).
  final scale = inSize / outSize;
  final filterScale = scale < 1.0 ? 1.0 : scale;
  final support = 1.0 * filterScale;
  final ksize = support.ceil() * 2 + 1;
  final bounds = Int32List(outSize * 2);
  final weights = Int32List(outSize * ksize);
  final invFilterScale = 1.0 / filterScale;
  final k = List<double>.filled(ksize, 0);
  for (var xx = 0; xx < outSize; xx++) {
    final center = (xx + 0.5) * scale;
    var ww = 0.0;
    var xmin = (center - support + 0.5).toInt();
    if (xmin < 0) xmin = 0;
    var xmax = (center + support + 0.5).toInt();
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    for (var x = 0; x < xmax; x++) {
      var t = (x + xmin - center + 0.5) * invFilterScale;
      if (t < 0.0) t = -t;
      final w = t < 1.0 ? 1.0 - t : 0.0;
      k[x] = w;
      ww += w;
    }
    for (var x = 0; x < xmax; x++) {
      final w = ww != 0.0 ? k[x] / ww : k[x];
      weights[xx * ksize + x] = w < 0
          ? (-0.5 + w * (1 << _precisionBits)).toInt()
          : (0.5 + w * (1 << _precisionBits)).toInt();
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return _Taps(bounds, weights, ksize);
}

int _clip8(int sum) {
  final v = sum >> _precisionBits;
  return v < 0 ? 0 : (v > 255 ? 255 : v);
}

/// Horizontal pass over rows `[first, first + rows)` of [src].
Uint8List _horizontal(
  Uint8List src,
  int width,
  int channels,
  int first,
  int rows,
  int outWidth,
  _Taps taps,
) {
  final out = Uint8List(outWidth * rows * channels);
  const half = 1 << (_precisionBits - 1);
  for (var yy = 0; yy < rows; yy++) {
    final base = (yy + first) * width * channels;
    for (var xx = 0; xx < outWidth; xx++) {
      final xmin = taps.bounds[xx * 2];
      final n = taps.bounds[xx * 2 + 1];
      final kOff = xx * taps.ksize;
      for (var c = 0; c < channels; c++) {
        var sum = half;
        var i = base + xmin * channels + c;
        for (var x = 0; x < n; x++, i += channels) {
          sum += src[i] * taps.weights[kOff + x];
        }
        out[(yy * outWidth + xx) * channels + c] = _clip8(sum);
      }
    }
  }
  return out;
}

/// Vertical pass; [taps] bounds are rows of [src].
Uint8List _vertical(
  Uint8List src,
  int width,
  int channels,
  int outHeight,
  _Taps taps, {
  int rowShift = 0,
}) {
  final out = Uint8List(width * outHeight * channels);
  const half = 1 << (_precisionBits - 1);
  final rowLen = width * channels;
  for (var yy = 0; yy < outHeight; yy++) {
    final ymin = taps.bounds[yy * 2] - rowShift;
    final n = taps.bounds[yy * 2 + 1];
    final kOff = yy * taps.ksize;
    for (var i0 = 0; i0 < rowLen; i0++) {
      var sum = half;
      var i = ymin * rowLen + i0;
      for (var y = 0; y < n; y++, i += rowLen) {
        sum += src[i] * taps.weights[kOff + y];
      }
      out[yy * rowLen + i0] = _clip8(sum);
    }
  }
  return out;
}

/// Pillow's `resize((outWidth, outHeight), Image.Resampling.BILINEAR)` on 8-bit
/// L or RGB pixels, bit for bit (two separable fixed-point passes with the
/// intermediate rounded to 8 bits).
///
/// The pass order follows Pillow 13, which runs the vertical pass first when
/// the height shrinks by more than twice the width's shrink in pixels; older
/// Pillow always starts horizontally (results then differ by at most 1 in a
/// few pixels).
ImagePixels resizeBilinear(ImagePixels src, int outWidth, int outHeight) {
  if (outWidth < 1 || outHeight < 1) {
    throw ArgumentError('the output size must be at least 1x1');
  }
  final w = src.width;
  final h = src.height;
  final c = src.channels;
  final needH = outWidth != w;
  final needV = outHeight != h;
  if (!needH && !needV) return src;
  final horizontalFirst = !(outHeight < h && (h - outHeight) > 2 * (w - outWidth));
  final vTaps = _precompute(h, outHeight);
  Uint8List data;
  if (horizontalFirst) {
    data = src.data;
    var width = w;
    var shift = 0;
    if (needH) {
      // Only the source rows the vertical pass reads.
      final first = vTaps.bounds[0];
      final last = vTaps.bounds[outHeight * 2 - 2] + vTaps.bounds[outHeight * 2 - 1];
      data = _horizontal(data, w, c, first, last - first, outWidth, _precompute(w, outWidth));
      width = outWidth;
      shift = first;
      if (!needV) {
        return ImagePixels(width: outWidth, height: h, channels: c, data: data);
      }
    }
    data = _vertical(data, width, c, outHeight, vTaps, rowShift: shift);
  } else {
    data = _vertical(src.data, w, c, outHeight, vTaps);
    if (needH) {
      data = _horizontal(data, w, c, 0, outHeight, outWidth, _precompute(w, outWidth));
    }
  }
  return ImagePixels(width: outWidth, height: outHeight, channels: c, data: data);
}

/// An `image` package [img.Image] holding [pixels] (for encoding or display).
img.Image imageFromPixels(ImagePixels pixels) => img.Image.fromBytes(
      width: pixels.width,
      height: pixels.height,
      bytes: pixels.data.buffer,
      bytesOffset: pixels.data.offsetInBytes,
      numChannels: pixels.channels,
    );
