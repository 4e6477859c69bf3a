/// Live object detection on camera frames, boxes drawn on the preview.
library;

import 'dart:async';

import 'package:camera/camera.dart';
import 'package:flutter/foundation.dart';
import 'package:flutter/material.dart';
import 'package:mobiletrain_client/on_device.dart';

import 'frame_convert.dart';

/// Streams camera frames, converts a few per second to upright RGB, runs the
/// detector and draws its boxes over the preview.
///
/// The converted frame has the orientation of the preview (see
/// [frameRotation]), so a box's position relative to the frame is its
/// position relative to the preview widget; `CameraPreview`'s `child` is laid
/// over the preview at the preview's own aspect ratio, so the painter only
/// scales.
class LiveDetectionPage extends StatefulWidget {
  /// Creates the page for [detector]; frames are subsampled to about
  /// [inputSize] pixels on their shorter side before detection.
  const LiveDetectionPage({super.key, required this.detector, this.inputSize = 192, this.minScore = 0.3});

  /// The loaded on-device detector.
  final ObjectDetector detector;

  /// The model's input size (shorter side), to subsample frames cheaply.
  final int inputSize;

  /// Detections scoring below this are not drawn.
  final double minScore;

  @override
  State<LiveDetectionPage> createState() => _LiveDetectionPageState();
}

/// What was found in one frame, with the frame's size (boxes are in its pixels).
class FrameDetections {
  /// Detections of a `width x height` frame.
  const FrameDetections(this.detections, this.width, this.height);

  /// The boxes, in frame pixels.
  final List<Detection> detections;

  /// Frame width in pixels.
  final int width;

  /// Frame height in pixels.
  final int height;
}

class _LiveDetectionPageState extends State<LiveDetectionPage> with WidgetsBindingObserver {
  /// At most this often a frame is run (about 3 per second): the model runs
  /// on the UI isolate, so more would make the preview stutter.
  static const Duration _interval = Duration(milliseconds: 330);

  CameraController? _controller;
  CameraDescription? _camera;
  FrameDetections? _found;
  int _latencyMs = 0;
  bool _busy = false;
  bool _opening = false;
  DateTime _lastFrame = DateTime.fromMillisecondsSinceEpoch(0);
  String? _error;

  @override
  void initState() {
    super.initState();
    WidgetsBinding.instance.addObserver(this);
    unawaited(_open());
  }

  @override
  void dispose() {
    WidgetsBinding.instance.removeObserver(this);
    unawaited(_close());
    super.dispose();
  }

  @override
  void didChangeAppLifecycleState(AppLifecycleState state) {
    // Release the camera in the background, reopen it on return (the camera
    // plugin's documented pattern).
    switch (state) {
      case AppLifecycleState.inactive:
      case AppLifecycleState.hidden:
      case AppLifecycleState.paused:
        if (_controller != null) {
          unawaited(_close());
          setState(() {});
        }
      case AppLifecycleState.resumed:
        if (_controller == null) unawaited(_open());
      case AppLifecycleState.detached:
        break;
    }
  }

  Future<void> _open() async {
    if (_opening) return;
    _opening = true;
    CameraController? created;
    try {
      final cameras = await availableCameras();
      if (cameras.isEmpty) {
        if (mounted) setState(() => _error = 'This device has no camera.');
        return;
      }
      final camera = cameras.firstWhere(
        (c) => c.lensDirection == CameraLensDirection.back,
        orElse: () => cameras.first,
      );
      final controller = created = CameraController(
        camera,
        ResolutionPreset.medium,
        enableAudio: false,
        imageFormatGroup: defaultTargetPlatform == TargetPlatform.iOS
            ? ImageFormatGroup.bgra8888
            : ImageFormatGroup.yuv420,
      );
      await controller.initialize();
      if (!mounted) {
        await controller.dispose();
        return;
      }
      await controller.startImageStream(_onFrame);
      setState(() {
        _camera = camera;
        _controller = controller;
        _error = null;
      });
    } on CameraException catch (e) {
      if (created != null && !identical(created, _controller)) await created.dispose();
      if (mounted) setState(() => _error = 'Camera error: ${e.description ?? e.code}');
    } finally {
      _opening = false;
    }
  }

  /// Stops the stream and releases the camera; does not call setState.
  Future<void> _close() async {
    final controller = _controller;
    _controller = null;
    if (controller == null) return;
    try {
      if (controller.value.isStreamingImages) await controller.stopImageStream();
    } on CameraException catch (e) {
      debugPrint('stopImageStream: ${e.description}');
    }
    await controller.dispose();
  }

  void _onFrame(CameraImage frame) {
    final now = DateTime.now();
    if (_busy || !mounted || now.difference(_lastFrame) < _interval) return;
    final controller = _controller;
    final camera = _camera;
    if (controller == null || camera == null) return;
    _busy = true;
    _lastFrame = now;
    try {
      final watch = Stopwatch()..start();
      final rgb = cameraImageToRgb(
        frame,
        minShortSide: widget.inputSize,
        rotationDegrees: frameRotation(
          platform: defaultTargetPlatform,
          sensorOrientation: camera.sensorOrientation,
          deviceOrientation: controller.value.deviceOrientation,
          lensDirection: camera.lensDirection,
        ),
      );
      if (rgb == null) {
        setState(() => _error = 'Unsupported camera frame format ${frame.format.group.name}.');
        return;
      }
      // Stretch: the preprocessing the model was trained with on the server.
      final found = widget.detector.detect(rgb, minScore: widget.minScore);
      watch.stop();
      setState(() {
        _found = FrameDetections(found, rgb.width, rgb.height);
        _latencyMs = watch.elapsedMilliseconds;
      });
    } on Object catch (e) {
      setState(() => _error = 'Detection failed: $e');
    } finally {
      _busy = false;
    }
  }

  @override
  Widget build(BuildContext context) {
    final controller = _controller;
    final found = _found;
    return PopScope(
      onPopInvokedWithResult: (didPop, _) {
        if (didPop) unawaited(_close());
      },
      child: Scaffold(
        backgroundColor: Colors.black,
        appBar: AppBar(title: const Text('Live detection')),
        body: Stack(
          fit: StackFit.expand,
          children: [
            if (controller != null && controller.value.isInitialized)
              Center(
                child: CameraPreview(
                  controller,
                  child: CustomPaint(painter: DetectionPainter(found, widget.detector.labels)),
                ),
              )
            else if (_error == null)
              const Center(child: CircularProgressIndicator()),
            Align(
              alignment: Alignment.bottomCenter,
              child: Container(
                width: double.infinity,
                color: Colors.black.withValues(alpha: 0.6),
                padding: const EdgeInsets.fromLTRB(16, 12, 16, 24),
                child: Text(
                  _error ??
                      (found == null
                          ? 'Waiting for a frame…'
                          : '${found.detections.length} found · $_latencyMs ms per frame'),
                  style: const TextStyle(color: Colors.white),
                ),
              ),
            ),
          ],
        ),
      ),
    );
  }
}

/// Draws detections (boxes in frame pixels) scaled to the canvas, with label
/// and score; one colour per class.
class DetectionPainter extends CustomPainter {
  /// A painter for [found] (null: nothing yet) with class [labels].
  DetectionPainter(this.found, this.labels);

  /// The latest frame's detections.
  final FrameDetections? found;

  /// Class labels, for stable colours.
  final List<String> labels;

  static const List<Color> _palette = [
    Colors.amber,
    Colors.lightBlueAccent,
    Colors.pinkAccent,
    Colors.lightGreenAccent,
    Colors.deepOrangeAccent,
    Colors.purpleAccent,
  ];

  @override
  void paint(Canvas canvas, Size size) {
    final f = found;
    if (f == null || f.width == 0 || f.height == 0) return;
    final sx = size.width / f.width;
    final sy = size.height / f.height;
    for (final d in f.detections) {
      final colour = _palette[d.index.abs() % _palette.length];
      final rect = Rect.fromLTRB(d.box.left * sx, d.box.top * sy, d.box.right * sx, d.box.bottom * sy);
      canvas.drawRect(
        rect,
        Paint()
          ..style = PaintingStyle.stroke
          ..strokeWidth = 3
          ..color = colour,
      );
      final text = TextPainter(
        text: TextSpan(
          text: ' ${d.label} ${(d.score * 100).round()}% ',
          style: TextStyle(color: Colors.black, backgroundColor: colour, fontSize: 13),
        ),
        textDirection: TextDirection.ltr,
      )..layout();
      final y = rect.top - text.height >= 0 ? rect.top - text.height : rect.top;
      text.paint(canvas, Offset(rect.left, y));
    }
  }

  @override
  bool shouldRepaint(DetectionPainter old) => !identical(old.found, found);
}
