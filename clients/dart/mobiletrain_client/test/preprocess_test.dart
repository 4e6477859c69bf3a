import 'dart:typed_data';

import 'package:image/image.dart' as img;
import 'package:mobiletrain_client/src/models.dart';
import 'package:mobiletrain_client/src/preprocess.dart';
import 'package:flutter_test/flutter_test.dart';

// Expected values below come from the server's own pipeline: Pillow's
// convert("L") and resize(..., Image.Resampling.BILINEAR), and numpy float32.

/// A w x h RGB test image with pixel (x, y) = a simple formula per channel.
img.Image pattern(int w, int h) {
  final image = img.Image(width: w, height: h);
  for (var y = 0; y < h; y++) {
    for (var x = 0; x < w; x++) {
      image.setPixelRgb(x, y, (x * 37 + y * 11) % 256, (x * 13 + y * 59) % 256, (x * 71 + y * 29) % 256);
    }
  }
  return image;
}

InputSpec spec(int w, int h, {ColorMode mode = ColorMode.rgb, Normalization n = Normalization.zeroOne}) {
  final (scale, offset) = switch (n) {
    Normalization.minusOneOne => (1 / 127.5, -1.0),
    Normalization.raw => (1.0, 0.0),
    _ => (1 / 255, 0.0),
  };
  return InputSpec(
    width: w,
    height: h,
    colorMode: mode,
    normalization: n,
    channels: mode == ColorMode.grayscale ? 1 : 3,
    scale: scale,
    offset: offset,
  );
}

void main() {
  group('colour conversion', () {
    test('RGB to L matches Pillow', () {
      final pixels = convertColor(pattern(7, 5), 1);
      expect(pixels.data, [
        0, 27, 54, 80, 78, 105, 132, 41, 68, 95, 122, 119, 146, 173, 82, 109, 136, 134, //
        160, 187, 214, 124, 150, 177, 175, 202, 228, 226, 165, 192, 39, 66, 93, 119, 40,
      ]);
    });

    test('grayscale to RGB repeats the value', () {
      final gray = img.Image(width: 2, height: 1, numChannels: 1)
        ..setPixelR(0, 0, 10)
        ..setPixelR(1, 0, 200);
      expect(convertColor(gray, 3).data, [10, 10, 10, 200, 200, 200]);
    });

    test('alpha is dropped, not blended', () {
      final rgba = img.Image(width: 1, height: 1, numChannels: 4)..setPixelRgba(0, 0, 9, 8, 7, 0);
      expect(convertColor(rgba, 3).data, [9, 8, 7]);
    });

    test('luma rounds like Pillow', () {
      expect(pillowLuma(255, 255, 255), 255);
      expect(pillowLuma(0, 0, 0), 0);
      expect(pillowLuma(128, 128, 128), 128);
      expect(pillowLuma(255, 0, 0), 76);
    });
  });

  group('bilinear resize (Pillow bit for bit)', () {
    test('downscale, horizontal pass first', () {
      final rgb = resizeBilinear(convertColor(pattern(7, 5), 3), 3, 4);
      expect(rgb.data, [
        35, 26, 68, 114, 54, 145, 193, 82, 116, 48, 95, 102, 127, 123, 135, 206, 151, 150, //
        60, 163, 136, 139, 191, 107, 218, 219, 131, 73, 191, 129, 152, 80, 96, 163, 96, 127,
      ]);
      final gray = resizeBilinear(convertColor(pattern(7, 5), 1), 3, 4);
      expect(gray.data, [33, 82, 119, 81, 125, 167, 129, 166, 209, 149, 104, 119]);
    });

    test('height shrinks much more: vertical pass first', () {
      final rgb = resizeBilinear(convertColor(pattern(5, 11), 3), 4, 2);
      expect(rgb.data, [
        40, 116, 96, 83, 116, 140, 127, 111, 120, 170, 126, 109, //
        88, 125, 131, 131, 133, 108, 175, 139, 140, 195, 116, 127,
      ]);
      final gray = resizeBilinear(convertColor(pattern(5, 11), 1), 4, 2);
      expect(gray.data, [92, 109, 116, 137, 115, 130, 150, 141]);
    });

    test('upscale', () {
      final gray = resizeBilinear(convertColor(pattern(3, 2), 1), 5, 4);
      expect(gray.data, [0, 11, 27, 43, 54, 10, 21, 37, 53, 64, 31, 42, 58, 74, 85, 41, 52, 68, 84, 95]);
      final rgb = resizeBilinear(convertColor(pattern(3, 2), 3), 5, 4);
      expect(rgb.data.sublist(0, 15), [0, 0, 0, 15, 5, 28, 37, 13, 71, 59, 21, 114, 74, 26, 142]);
      expect(rgb.data.sublist(45), [11, 59, 29, 26, 64, 57, 48, 72, 100, 70, 80, 143, 85, 85, 171]);
    });

    test('same size is a no-op', () {
      final pixels = convertColor(pattern(4, 4), 3);
      expect(identical(resizeBilinear(pixels, 4, 4), pixels), isTrue);
    });
  });

  group('ImagePreprocessor', () {
    test('fromImage converts and resizes to the spec', () {
      final pre = ImagePreprocessor(spec(3, 4, mode: ColorMode.grayscale));
      final pixels = pre.fromImage(pattern(7, 5));
      expect([pixels.width, pixels.height, pixels.channels], [3, 4, 1]);
      expect(pixels.data, [33, 82, 119, 81, 125, 167, 129, 166, 209, 149, 104, 119]);
    });

    test('normalize: zero-one in float32', () {
      final pre = ImagePreprocessor(spec(7, 1, mode: ColorMode.grayscale));
      final out = pre.normalize(ImagePixels(
        width: 7,
        height: 1,
        channels: 1,
        data: Uint8List.fromList([0, 1, 2, 127, 128, 200, 255]),
      ));
      expect(out, [
        0.0, 0.003921568859368563, 0.007843137718737125, 0.49803924560546875, //
        0.501960813999176, 0.7843137979507446, 1.0,
      ]);
    });

    test('normalize: minus-one-one in float32', () {
      final pre = ImagePreprocessor(spec(7, 1, mode: ColorMode.grayscale, n: Normalization.minusOneOne));
      final out = pre.normalize(ImagePixels(
        width: 7,
        height: 1,
        channels: 1,
        data: Uint8List.fromList([0, 1, 2, 127, 128, 200, 255]),
      ));
      expect(out, [
        -1.0, -0.9921568632125854, -0.9843137264251709, -0.0039215087890625, //
        0.003921627998352051, 0.5686275959014893, 1.0,
      ]);
    });

    test('decode + prepareForUpload round trip a PNG', () {
      final png = img.encodePng(pattern(7, 5));
      final pre = ImagePreprocessor(spec(3, 4));
      expect(pre.decode(png).data, resizeBilinear(convertColor(pattern(7, 5), 3), 3, 4).data);
      final upload = pre.prepareForUpload(png);
      expect(isPngData(upload), isTrue, reason: 'PNG stays lossless');
      final back = img.decodePng(upload)!;
      expect([back.width, back.height], [3, 4]);
    });

    test('photos are uploaded as JPEG', () {
      final jpeg = img.encodeJpg(pattern(40, 30), quality: 90);
      final upload = ImagePreprocessor(spec(8, 8)).prepareForUpload(jpeg);
      expect(isJpegData(upload), isTrue);
    });

    test('rejects bytes that are not an image', () {
      final pre = ImagePreprocessor(spec(8, 8));
      expect(() => pre.decode('not an image at all, just text'.codeUnits), throwsFormatException);
      expect(() => pre.decode([0xFF, 0xD8, 0xFF, 0xE0, 0, 16]), throwsFormatException, reason: 'truncated JPEG');
    });
  });

  group('JPEG draft emulation', () {
    test('picks the scale Pillow picks', () {
      // side = 2 * max(96, 96) = 192
      expect(jpegDraftScale(4000, 3000, 96, 96), 8);
      expect(jpegDraftScale(1000, 800, 96, 96), 4);
      expect(jpegDraftScale(500, 400, 96, 96), 2);
      expect(jpegDraftScale(300, 3000, 96, 96), 1);
    });

    test('box reduction averages blocks, partial ones too', () {
      final src = ImagePixels(
        width: 3,
        height: 2,
        channels: 1,
        data: Uint8List.fromList([0, 10, 100, 20, 30, 201]),
      );
      final out = reduceBox(src, 2);
      expect([out.width, out.height], [2, 1]);
      expect(out.data, [15, 151]);
    });
  });

  group('input spec JSON', () {
    test('reads the server form and derives missing numbers', () {
      final s = inputSpecFromJson({'width': 96, 'height': 64, 'color_mode': 'grayscale', 'normalization': 'minus-one-one'});
      expect(s.channels, 1);
      expect(s.scale, 1 / 127.5);
      expect(s.offset, -1.0);
      final back = inputSpecFromJson(inputSpecToJson(s));
      expect([back.width, back.height, back.colorMode, back.normalization], [96, 64, ColorMode.grayscale, Normalization.minusOneOne]);
    });
  });
}
