import 'package:camera/camera.dart';
import 'package:flutter/foundation.dart';
import 'package:flutter/services.dart';
import 'package:flutter_test/flutter_test.dart';
import 'package:mobiletrain_example/src/frame_convert.dart';

void main() {
  test('rotation compensates the sensor on Android only', () {
    expect(
      frameRotation(
        platform: TargetPlatform.android,
        sensorOrientation: 90,
        deviceOrientation: DeviceOrientation.portraitUp,
        lensDirection: CameraLensDirection.back,
      ),
      90,
    );
    expect(
      frameRotation(
        platform: TargetPlatform.android,
        sensorOrientation: 90,
        deviceOrientation: DeviceOrientation.landscapeLeft,
        lensDirection: CameraLensDirection.back,
      ),
      0,
    );
    expect(
      frameRotation(
        platform: TargetPlatform.iOS,
        sensorOrientation: 90,
        deviceOrientation: DeviceOrientation.portraitUp,
        lensDirection: CameraLensDirection.back,
      ),
      0,
    );
  });
}
