/// Model + classify: update check, download with progress, and on-device
/// classification of a photo or of live camera frames.
library;

import 'dart:async';
import 'dart:isolate';
import 'dart:math' as math;
import 'dart:typed_data';

import 'package:flutter/material.dart';
import 'package:image_picker/image_picker.dart';
import 'package:mobiletrain_client/on_device.dart';

import 'app_state.dart';
import 'live_camera_page.dart';
import 'live_detection_page.dart';
import 'prediction_list.dart';

/// Downloads the promoted model and runs it on the device.
class ClassifyPage extends StatefulWidget {
  /// Creates the page.
  const ClassifyPage({super.key});

  @override
  State<ClassifyPage> createState() => _ClassifyPageState();
}

class _ClassifyPageState extends State<ClassifyPage> {
  final ImagePicker _picker = ImagePicker();

  UpdateCheck? _check;
  bool _checking = false;
  bool _downloading = false;
  int _received = 0;
  int _total = 0;
  String? _modelError;

  Uint8List? _photo;
  List<Prediction>? _local;
  int _localMs = 0;
  List<Prediction>? _server;
  bool _classifying = false;
  bool _askServer = false;
  String? _classifyError;

  Future<void> _checkForUpdate() async {
    setState(() {
      _checking = true;
      _modelError = null;
    });
    try {
      final check = await AppScope.read(context).checkForModelUpdate();
      if (mounted) setState(() => _check = check);
    } on Object catch (e) {
      if (mounted) setState(() => _modelError = describeError(e));
    } finally {
      if (mounted) setState(() => _checking = false);
    }
  }

  Future<void> _download() async {
    setState(() {
      _downloading = true;
      _received = 0;
      _total = _check?.artifact?.size ?? 0;
      _modelError = null;
    });
    try {
      await AppScope.read(context).downloadModel(
        onProgress: (received, total) {
          if (mounted) {
            setState(() {
              _received = received;
              _total = total;
            });
          }
        },
      );
      if (!mounted) return;
      // The installed file is now the current one.
      setState(() => _check = null);
      ScaffoldMessenger.of(context).showSnackBar(const SnackBar(content: Text('Model installed.')));
    } on Object catch (e) {
      // A partial download is kept; tapping Download again resumes it.
      if (mounted) setState(() => _modelError = describeError(e));
    } finally {
      if (mounted) setState(() => _downloading = false);
    }
  }

  Future<void> _classifyPhoto(ImageSource source) async {
    final state = AppScope.read(context);
    final classifier = state.classifier;
    if (classifier == null) return;
    final XFile? file;
    try {
      file = await _picker.pickImage(source: source, maxWidth: 1024, maxHeight: 1024, imageQuality: 95);
    } on Object catch (e) {
      if (mounted) setState(() => _classifyError = 'Could not get a photo: $e');
      return;
    }
    if (file == null) return;
    final bytes = await file.readAsBytes();
    if (!mounted) return;
    setState(() {
      _photo = bytes;
      _local = null;
      _server = null;
      _classifying = true;
      _classifyError = null;
    });
    try {
      // Decoding and resizing a photo takes a while: do it off the UI
      // isolate with the classifier's own preprocessor (the server's pipeline),
      // then only run the model here.
      final pixels = await _decode(classifier.preprocessor, bytes);
      final watch = Stopwatch()..start();
      final top = classifier.classify(pixels, topK: 3);
      watch.stop();
      if (!mounted) return;
      setState(() {
        _local = top;
        _localMs = watch.elapsedMilliseconds;
      });
      final client = state.client;
      if (_askServer && client != null) {
        final server = await client.predict(state.projectRef, bytes, topK: 3);
        if (mounted) setState(() => _server = server);
      }
    } on Object catch (e) {
      if (mounted) setState(() => _classifyError = describeError(e));
    } finally {
      if (mounted) setState(() => _classifying = false);
    }
  }

  // Static so the isolate closure captures nothing but its arguments.
  static Future<ImagePixels> _decode(ImagePreprocessor preprocessor, Uint8List bytes) =>
      Isolate.run(() => preprocessor.decode(bytes));

  void _openLiveCamera(InstalledModel model, ImageClassifier classifier) {
    final spec = model.manifest.inputSpec;
    unawaited(
      Navigator.of(context).push(
        MaterialPageRoute<void>(
          builder: (_) => LiveCameraPage(
            classifier: classifier,
            inputSize: math.max(1, math.min(spec.width, spec.height)),
          ),
        ),
      ),
    );
  }

  void _openLiveDetection(InstalledModel model, ObjectDetector detector) {
    final spec = model.manifest.inputSpec;
    unawaited(
      Navigator.of(context).push(
        MaterialPageRoute<void>(
          builder: (_) => LiveDetectionPage(
            detector: detector,
            inputSize: math.max(1, math.min(spec.width, spec.height)),
          ),
        ),
      ),
    );
  }

  @override
  Widget build(BuildContext context) {
    final state = AppScope.of(context);
    if (state.client == null) {
      return const Center(child: Text('Connect to a server on the Server tab first.'));
    }
    final theme = Theme.of(context);
    final installed = state.installedModel;
    final classifier = state.classifier;
    final detector = state.detector;
    return ListView(
      padding: const EdgeInsets.all(16),
      children: [
        _modelCard(theme, state, installed),
        const SizedBox(height: 16),
        Text(detector != null ? 'Detect' : 'Classify', style: theme.textTheme.titleMedium),
        const SizedBox(height: 8),
        if (installed != null && detector != null)
          FilledButton.icon(
            onPressed: () => _openLiveDetection(installed, detector),
            icon: const Icon(Icons.videocam),
            label: const Text('Live detection'),
          )
        else if (installed == null || classifier == null)
          const Text('Download a model first.')
        else ...[
          FilledButton.icon(
            onPressed: () => _openLiveCamera(installed, classifier),
            icon: const Icon(Icons.videocam),
            label: const Text('Live camera'),
          ),
          const SizedBox(height: 8),
          Row(
            children: [
              Expanded(
                child: OutlinedButton.icon(
                  onPressed: _classifying ? null : () => _classifyPhoto(ImageSource.gallery),
                  icon: const Icon(Icons.photo_library),
                  label: const Text('Pick a photo'),
                ),
              ),
              const SizedBox(width: 12),
              Expanded(
                child: OutlinedButton.icon(
                  onPressed: _classifying ? null : () => _classifyPhoto(ImageSource.camera),
                  icon: const Icon(Icons.photo_camera),
                  label: const Text('Take a photo'),
                ),
              ),
            ],
          ),
          SwitchListTile(
            contentPadding: EdgeInsets.zero,
            title: const Text('Compare with the server'),
            subtitle: const Text('Also send the photo to the server’s predict endpoint'),
            value: _askServer,
            onChanged: (v) => setState(() => _askServer = v),
          ),
          if (_photo != null)
            _photoResult(theme)
          else if (_classifyError != null)
            Text(_classifyError!, style: TextStyle(color: theme.colorScheme.error)),
        ],
      ],
    );
  }

  Widget _modelCard(ThemeData theme, AppState state, InstalledModel? installed) {
    final check = _check;
    final latest = check?.latest;
    final updateAvailable = check != null && !check.notModified && latest != null;
    final accuracy = installed == null ? null : manifestAccuracy(installed.manifest, state.settings.modelFormat);
    return Card(
      child: Padding(
        padding: const EdgeInsets.all(16),
        child: Column(
          crossAxisAlignment: CrossAxisAlignment.start,
          children: [
            Text('Model (${state.settings.modelFormat.wireName})', style: theme.textTheme.titleMedium),
            const SizedBox(height: 8),
            if (installed == null)
              const Text('No model on this device yet.')
            else ...[
              Text('Version ${installed.version} · ${installed.manifest.labels.length} labels'),
              if (accuracy != null) Text('Validation accuracy ${(accuracy * 100).toStringAsFixed(1)} %'),
              Text(
                'sha256 ${installed.sha256.length > 12 ? installed.sha256.substring(0, 12) : installed.sha256}…',
                style: theme.textTheme.bodySmall,
              ),
            ],
            const SizedBox(height: 12),
            if (check != null && check.notModified)
              const Text('Up to date.')
            else if (check != null && latest == null)
              const Text('The server has no promoted model yet: train one first.')
            else if (check != null && !check.notModified && latest != null)
              Text(
                'Version ${latest.version} available'
                '${check.artifact == null ? '' : ' (${_megabytes(check.artifact!.size)})'}'
                ' · accuracy ${(latest.accuracy * 100).toStringAsFixed(1)} %',
              ),
            if (_downloading) ...[
              const SizedBox(height: 8),
              LinearProgressIndicator(
                value: _total > 0 ? (_received / _total).clamp(0.0, 1.0) : null,
                minHeight: 6,
                borderRadius: BorderRadius.circular(3),
              ),
              const SizedBox(height: 4),
              Text(
                _total > 0 ? '${_megabytes(_received)} of ${_megabytes(_total)}' : _megabytes(_received),
                style: theme.textTheme.bodySmall,
              ),
            ],
            if (_modelError != null) ...[
              const SizedBox(height: 8),
              Text(_modelError!, style: TextStyle(color: theme.colorScheme.error)),
            ],
            const SizedBox(height: 12),
            Wrap(
              spacing: 12,
              runSpacing: 8,
              children: [
                OutlinedButton.icon(
                  onPressed: _checking || _downloading ? null : _checkForUpdate,
                  icon: const Icon(Icons.sync),
                  label: Text(_checking ? 'Checking…' : 'Check for update'),
                ),
                if (updateAvailable || (installed == null && check == null))
                  FilledButton.icon(
                    onPressed: _downloading ? null : _download,
                    icon: const Icon(Icons.download),
                    label: Text(_modelError != null && _received > 0 ? 'Resume download' : 'Download'),
                  ),
              ],
            ),
          ],
        ),
      ),
    );
  }

  Widget _photoResult(ThemeData theme) {
    return Card(
      clipBehavior: Clip.antiAlias,
      child: Column(
        crossAxisAlignment: CrossAxisAlignment.stretch,
        children: [
          AspectRatio(
            aspectRatio: 4 / 3,
            child: Image.memory(_photo!, fit: BoxFit.cover, cacheWidth: 800),
          ),
          Padding(
            padding: const EdgeInsets.all(16),
            child: Column(
              crossAxisAlignment: CrossAxisAlignment.stretch,
              children: [
                if (_classifying) const LinearProgressIndicator(),
                if (_local != null) ...[
                  Text('On device · $_localMs ms', style: theme.textTheme.titleSmall),
                  const SizedBox(height: 4),
                  PredictionList(predictions: _local!),
                ],
                if (_server != null) ...[
                  const SizedBox(height: 12),
                  Text('Server', style: theme.textTheme.titleSmall),
                  const SizedBox(height: 4),
                  PredictionList(predictions: _server!),
                ],
                if (_classifyError != null)
                  Text(_classifyError!, style: TextStyle(color: theme.colorScheme.error)),
              ],
            ),
          ),
        ],
      ),
    );
  }

  static String _megabytes(int bytes) => '${(bytes / (1024 * 1024)).toStringAsFixed(1)} MB';
}

/// Validation accuracy of [format] recorded in the manifest
/// (`metrics.validation_accuracy`), falling back to the Keras model's.
double? manifestAccuracy(Manifest manifest, ModelFormat format) {
  final metrics = manifest.json['metrics'];
  if (metrics is! Map<String, Object?>) return null;
  final accuracies = metrics['validation_accuracy'];
  if (accuracies is! Map<String, Object?>) return null;
  final value = accuracies[format.wireName] ?? accuracies['keras'];
  return value is num ? value.toDouble() : null;
}
