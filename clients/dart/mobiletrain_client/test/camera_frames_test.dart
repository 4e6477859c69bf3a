import 'dart:typed_data';

import 'package:flutter_test/flutter_test.dart';
import 'package:mobiletrain_client/src/camera_frames.dart';

void main() {
  test('grey YUV gives grey RGB', () {
    const w = 4, h = 4;
    final image = yuv420ToRgb(
      width: w,
      height: h,
      y: Uint8List(w * h)..fillRange(0, w * h, 100),
      u: Uint8List(w * h ~/ 4)..fillRange(0, w * h ~/ 4, 128),
      v: Uint8List(w * h ~/ 4)..fillRange(0, w * h ~/ 4, 128),
      yRowStride: w,
      uvRowStride: w ~/ 2,
      uvPixelStride: 1,
    );
    expect(image.width, w);
    expect(image.height, h);
    final p = image.getPixel(1, 2);
    expect([p.r, p.g, p.b], [100, 100, 100]);
  });

  test('strong Cr makes red', () {
    final image = yuv420ToRgb(
      width: 2,
      height: 2,
      y: Uint8List.fromList([128, 128, 128, 128]),
      u: Uint8List.fromList([128]),
      v: Uint8List.fromList([255]),
      yRowStride: 2,
      uvRowStride: 1,
      uvPixelStride: 1,
    );
    final p = image.getPixel(0, 0);
    expect(p.r, 255);
    expect(p.g, lessThan(128));
    expect(p.b, 128);
  });

  test('subsampling halves the size', () {
    const w = 8, h = 6;
    final image = bgra8888ToRgb(
      width: w,
      height: h,
      bytes: Uint8List(w * h * 4),
      rowStride: w * 4,
      step: 2,
    );
    expect(image.width, 4);
    expect(image.height, 3);
  });

  test('BGRA swaps to RGB', () {
    final image = bgra8888ToRgb(
      width: 1,
      height: 1,
      bytes: Uint8List.fromList([10, 20, 30, 255]),
      rowStride: 4,
    );
    final p = image.getPixel(0, 0);
    expect([p.r, p.g, p.b], [30, 20, 10]);
  });

  test('NV21 reads V before U', () {
    // 2x2 Y plane, then one V,U pair.
    final image = nv21ToRgb(
      width: 2,
      height: 2,
      bytes: Uint8List.fromList([128, 128, 128, 128, 255, 128]),
    );
    expect(image.getPixel(1, 1).r, 255);
  });

  test('subsampleStep keeps the short side above the model input', () {
    expect(subsampleStep(1280, 720, 224), 3);
    expect(subsampleStep(320, 240, 224), 1);
    expect(subsampleStep(100, 100, 224), 1);
  });
}
