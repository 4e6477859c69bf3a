/// Live classification of camera frames with the on-device model.
library;

import 'dart:async';

import 'package:camera/camera.dart';
import 'package:flutter/foundation.dart';
import 'package:flutter/material.dart';
import 'package:mobiletrain_client/on_device.dart';

import 'frame_convert.dart';
import 'prediction_list.dart';

/// Streams camera frames, converts a few per second to RGB and classifies them.
class LiveCameraPage extends StatefulWidget {
  /// Creates the page for [classifier]; frames are subsampled to about
  /// [inputSize] pixels on their shorter side before classification.
  const LiveCameraPage({super.key, required this.classifier, this.inputSize = 224});

  /// The loaded on-device model.
  final ImageClassifier classifier;

  /// The model's input size (shorter side), to subsample frames cheaply.
  final int inputSize;

  @override
  State<LiveCameraPage> createState() => _LiveCameraPageState();
}

class _LiveCameraPageState extends State<LiveCameraPage> with WidgetsBindingObserver {
  /// At most this often a frame is classified (about 3 per second): the
  /// model runs on the UI isolate, so more would make the preview stutter.
  static const Duration _interval = Duration(milliseconds: 330);

  CameraController? _controller;
  CameraDescription? _camera;
  List<Prediction> _top = const [];
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
    // The camera must be released when the app leaves the foreground
    // (the camera plugin's documented pattern) and reopened on return.
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
        // Android delivers YUV420 cheaply; on iOS BGRA avoids a chroma step.
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
      if (mounted) setState(() => _error = _cameraError(e));
    } finally {
      _opening = false;
    }
  }

  static String _cameraError(CameraException e) => switch (e.code) {
    'CameraAccessDenied' || 'CameraAccessDeniedWithoutPrompt' || 'CameraAccessRestricted' =>
      'Camera access was denied. Allow it in the system settings.',
    _ => 'Camera error: ${e.description ?? e.code}',
  };

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
      final top = widget.classifier.classify(rgb, topK: 3);
      watch.stop();
      setState(() {
        _top = top;
        _latencyMs = watch.elapsedMilliseconds;
      });
    } on Object catch (e) {
      setState(() => _error = 'Classification failed: $e');
    } finally {
      _busy = false;
    }
  }

  @override
  Widget build(BuildContext context) {
    final controller = _controller;
    return PopScope(
      // Stop the stream as soon as the user leaves, not after the route animation.
      onPopInvokedWithResult: (didPop, _) {
        if (didPop) unawaited(_close());
      },
      child: Scaffold(
        backgroundColor: Colors.black,
        appBar: AppBar(title: const Text('Live classification')),
        body: Stack(
          fit: StackFit.expand,
          children: [
            if (controller != null && controller.value.isInitialized)
              Center(child: CameraPreview(controller))
            else if (_error == null)
              const Center(child: CircularProgressIndicator()),
            Align(
              alignment: Alignment.bottomCenter,
              child: Container(
                width: double.infinity,
                color: Colors.black.withValues(alpha: 0.6),
                padding: const EdgeInsets.fromLTRB(16, 12, 16, 24),
                child: _error != null
                    ? Text(_error!, style: const TextStyle(color: Colors.white))
                    : Column(
                        mainAxisSize: MainAxisSize.min,
                        crossAxisAlignment: CrossAxisAlignment.stretch,
                        children: [
                          PredictionList(predictions: _top, dense: true, color: Colors.white),
                          const SizedBox(height: 6),
                          Text(
                            _top.isEmpty ? 'Waiting for a frame…' : '$_latencyMs ms per frame',
                            style: const TextStyle(color: Colors.white70, fontSize: 12),
                          ),
                        ],
                      ),
              ),
            ),
          ],
        ),
      ),
    );
  }
}
