/// Converts `package:camera` stream frames (YUV420 / NV21 on Android, BGRA on
/// iOS) to upright RGB `img.Image`s that `ImageClassifier.classify` accepts,
/// with the pixel converters of `mobiletrain_client` (`camera_frames.dart`).
library;

import 'dart:typed_data';

import 'package:camera/camera.dart';
import 'package:flutter/foundation.dart';
import 'package:flutter/services.dart';
import 'package:image/image.dart' as img;
import 'package:mobiletrain_client/mobiletrain_client.dart';

/// Converts [frame] to an upright RGB image whose shorter side is at least
/// [minShortSide] pixels (when the frame is that large).
///
/// [rotationDegrees] (a multiple of 90) turns the sensor image upright; see
/// [frameRotation]. Returns null for formats it cannot read (JPEG streams).
img.Image? cameraImageToRgb(
  CameraImage frame, {
  int minShortSide = 224,
  int rotationDegrees = 0,
}) {
  final step = subsampleStep(frame.width, frame.height, minShortSide);
  final img.Image? rgb;
  switch (frame.format.group) {
    case ImageFormatGroup.yuv420 when frame.planes.length >= 3:
      final y = frame.planes[0];
      final u = frame.planes[1];
      final v = frame.planes[2];
      rgb = yuv420ToRgb(
        width: frame.width,
        height: frame.height,
        y: y.bytes,
        u: u.bytes,
        v: v.bytes,
        yRowStride: y.bytesPerRow,
        uvRowStride: u.bytesPerRow,
        uvPixelStride: u.bytesPerPixel ?? 1,
        step: step,
      );
    case ImageFormatGroup.yuv420 when frame.planes.length == 2:
      // iOS bi-planar 420: Y, then interleaved CbCr.
      final y = frame.planes[0];
      final uv = frame.planes[1];
      rgb = yuv420ToRgb(
        width: frame.width,
        height: frame.height,
        y: y.bytes,
        u: uv.bytes,
        v: Uint8List.sublistView(uv.bytes, 1),
        yRowStride: y.bytesPerRow,
        uvRowStride: uv.bytesPerRow,
        uvPixelStride: 2,
        step: step,
      );
    case ImageFormatGroup.nv21:
      final plane = frame.planes.first;
      rgb = nv21ToRgb(
        width: frame.width,
        height: frame.height,
        bytes: plane.bytes,
        rowStride: plane.bytesPerRow,
        step: step,
      );
    case ImageFormatGroup.bgra8888:
      final plane = frame.planes.first;
      rgb = bgra8888ToRgb(
        width: frame.width,
        height: frame.height,
        bytes: plane.bytes,
        rowStride: plane.bytesPerRow,
        step: step,
      );
    default:
      rgb = null;
  }
  if (rgb == null || rotationDegrees % 360 == 0) return rgb;
  return img.copyRotate(rgb, angle: rotationDegrees);
}

/// How many degrees clockwise a frame must turn to be upright.
///
/// Android streams frames in the sensor's orientation, so they are turned by
/// the sensor orientation, corrected for how the device is held (the same
/// compensation CameraX documents). iOS already rotates the video output to
/// the device orientation, so nothing is needed there.
int frameRotation({
  required TargetPlatform platform,
  required int sensorOrientation,
  required DeviceOrientation deviceOrientation,
  required CameraLensDirection lensDirection,
}) {
  if (platform != TargetPlatform.android) return 0;
  final device = switch (deviceOrientation) {
    DeviceOrientation.portraitUp => 0,
    DeviceOrientation.landscapeLeft => 90,
    DeviceOrientation.portraitDown => 180,
    DeviceOrientation.landscapeRight => 270,
  };
  return lensDirection == CameraLensDirection.front
      ? (sensorOrientation + device) % 360
      : (sensorOrientation - device + 360) % 360;
}
