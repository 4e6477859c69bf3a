/// Collect: take or pick photos, label them and queue them for upload.
library;

import 'dart:async';
import 'dart:typed_data';

import 'package:flutter/foundation.dart';
import 'package:flutter/material.dart';
import 'package:image_picker/image_picker.dart';
import 'package:mobiletrain_client/on_device.dart';

import 'app_state.dart';

/// Photos are capped at this size by the picker; the server accepts far
/// more, but multi-megapixel uploads only slow the queue down.
const double _maxPickSide = 2048;

/// Labels photos and feeds them to the persistent upload queue.
class CollectPage extends StatefulWidget {
  /// Creates the collect page.
  const CollectPage({super.key});

  @override
  State<CollectPage> createState() => _CollectPageState();
}

class _CollectPageState extends State<CollectPage> {
  final ImagePicker _picker = ImagePicker();
  final TextEditingController _newLabel = TextEditingController();
  final List<String> _extraLabels = [];
  final List<XFile> _recovered = [];
  String? _label;
  bool _busy = false;

  @override
  void initState() {
    super.initState();
    unawaited(_recoverLostPhotos());
  }

  @override
  void dispose() {
    _newLabel.dispose();
    super.dispose();
  }

  /// Android may kill the app while the camera app is open; the photo then
  /// arrives through retrieveLostData on the next start.
  Future<void> _recoverLostPhotos() async {
    if (kIsWeb || defaultTargetPlatform != TargetPlatform.android) return;
    try {
      final response = await _picker.retrieveLostData();
      final files = response.files;
      if (!mounted || response.isEmpty || files == null || files.isEmpty) return;
      setState(() => _recovered.addAll(files));
    } on Object catch (e) {
      debugPrint('retrieveLostData failed: $e');
    }
  }

  Future<void> _take() async {
    final file = await _pick(
      () => _picker.pickImage(
        source: ImageSource.camera,
        maxWidth: _maxPickSide,
        maxHeight: _maxPickSide,
        imageQuality: 90,
      ),
    );
    if (file != null) await _queue([file]);
  }

  Future<void> _pickMany() async {
    final files = await _pick(
      () => _picker.pickMultiImage(maxWidth: _maxPickSide, maxHeight: _maxPickSide, imageQuality: 90),
    );
    if (files != null && files.isNotEmpty) await _queue(files);
  }

  /// Runs a picker call, turning a platform failure (permission denied) into a message.
  Future<T?> _pick<T>(Future<T> Function() pick) async {
    try {
      return await pick();
    } on Object catch (e) {
      _show('Could not get a photo: $e');
      return null;
    }
  }

  Future<void> _queue(List<XFile> files) async {
    final label = _label;
    if (label == null) return;
    final state = AppScope.read(context);
    setState(() => _busy = true);
    var queued = 0;
    try {
      for (final file in files) {
        final Uint8List bytes = await file.readAsBytes();
        await state.enqueuePhoto(bytes, label);
        queued++;
      }
      _show('Queued $queued photo${queued == 1 ? '' : 's'} as "$label".');
    } on Object catch (e) {
      _show('Queued $queued of ${files.length}: ${describeError(e)}');
    } finally {
      if (mounted) setState(() => _busy = false);
    }
  }

  Future<void> _queueRecovered() async {
    final files = List.of(_recovered);
    setState(_recovered.clear);
    await _queue(files);
  }

  void _addLabel(Project project) {
    final label = _newLabel.text.trim();
    if (label.isEmpty) return;
    setState(() {
      if (!project.labels.contains(label) && !_extraLabels.contains(label)) {
        _extraLabels.add(label);
      }
      _label = label;
      _newLabel.clear();
    });
  }

  void _show(String text) {
    if (!mounted) return;
    ScaffoldMessenger.of(context).showSnackBar(SnackBar(content: Text(text)));
  }

  @override
  Widget build(BuildContext context) {
    final state = AppScope.of(context);
    final project = state.project;
    if (project == null) {
      return const _NotConnected();
    }
    final labels = [...project.labels, ..._extraLabels];
    final canShoot = _label != null && !_busy;
    final theme = Theme.of(context);
    return ListView(
      padding: const EdgeInsets.all(16),
      children: [
        Text('Label', style: theme.textTheme.titleMedium),
        const SizedBox(height: 8),
        if (labels.isEmpty)
          const Text('This project has no labels yet: type the first one below.'),
        Wrap(
          spacing: 8,
          runSpacing: 8,
          children: [
            for (final l in labels)
              ChoiceChip(
                label: Text(l),
                selected: _label == l,
                onSelected: (selected) => setState(() => _label = selected ? l : null),
              ),
          ],
        ),
        if (!project.labelsFixed) ...[
          const SizedBox(height: 12),
          Row(
            children: [
              Expanded(
                child: TextField(
                  controller: _newLabel,
                  decoration: const InputDecoration(
                    labelText: 'New label',
                    border: OutlineInputBorder(),
                    isDense: true,
                  ),
                  textInputAction: TextInputAction.done,
                  onSubmitted: (_) => _addLabel(project),
                ),
              ),
              const SizedBox(width: 8),
              IconButton.filledTonal(
                tooltip: 'Use this label',
                onPressed: () => _addLabel(project),
                icon: const Icon(Icons.add),
              ),
            ],
          ),
        ],
        const SizedBox(height: 16),
        Row(
          children: [
            Expanded(
              child: FilledButton.icon(
                onPressed: canShoot ? _take : null,
                icon: const Icon(Icons.photo_camera),
                label: const Text('Take photo'),
              ),
            ),
            const SizedBox(width: 12),
            Expanded(
              child: OutlinedButton.icon(
                onPressed: canShoot ? _pickMany : null,
                icon: const Icon(Icons.photo_library),
                label: const Text('Pick photos'),
              ),
            ),
          ],
        ),
        if (_label == null)
          Padding(
            padding: const EdgeInsets.only(top: 8),
            child: Text('Choose a label first.', style: theme.textTheme.bodySmall),
          ),
        if (_busy) const Padding(padding: EdgeInsets.only(top: 8), child: LinearProgressIndicator()),
        if (_recovered.isNotEmpty)
          Card(
            margin: const EdgeInsets.only(top: 16),
            child: ListTile(
              leading: const Icon(Icons.restore),
              title: Text('${_recovered.length} photo(s) recovered from the camera'),
              subtitle: Text(_label == null ? 'Choose a label to queue them.' : 'Queue them as "$_label".'),
              trailing: TextButton(onPressed: canShoot ? _queueRecovered : null, child: const Text('Queue')),
            ),
          ),
        const SizedBox(height: 16),
        _QueueCard(state: state),
        const SizedBox(height: 16),
        if (state.recentPhotos.isNotEmpty) ...[
          Text('This session', style: theme.textTheme.titleMedium),
          const SizedBox(height: 8),
          GridView.count(
            crossAxisCount: 4,
            mainAxisSpacing: 6,
            crossAxisSpacing: 6,
            shrinkWrap: true,
            physics: const NeverScrollableScrollPhysics(),
            children: [for (final p in state.recentPhotos) _Thumb(photo: p, status: state.statusOf(p.clientId))],
          ),
        ],
      ],
    );
  }
}

class _QueueCard extends StatelessWidget {
  const _QueueCard({required this.state});

  final AppState state;

  @override
  Widget build(BuildContext context) {
    final theme = Theme.of(context);
    final progress = state.uploadProgress;
    final pending = progress?.pending ?? 0;
    final sent = progress?.sent ?? 0;
    final failed = progress?.failed ?? 0;
    final total = pending + sent + failed;
    final last = progress?.last;
    return Card(
      child: Padding(
        padding: const EdgeInsets.all(16),
        child: Column(
          crossAxisAlignment: CrossAxisAlignment.start,
          children: [
            Row(
              children: [
                Text('Upload queue', style: theme.textTheme.titleMedium),
                const Spacer(),
                if (state.isFlushing)
                  const SizedBox.square(dimension: 16, child: CircularProgressIndicator(strokeWidth: 2)),
              ],
            ),
            const SizedBox(height: 12),
            LinearProgressIndicator(
              // Indeterminate while sending with nothing counted yet.
              value: total == 0 ? (state.isFlushing ? null : 0) : (sent + failed) / total,
              minHeight: 6,
              borderRadius: BorderRadius.circular(3),
            ),
            const SizedBox(height: 8),
            Wrap(
              spacing: 16,
              children: [
                _Count(icon: Icons.schedule, label: 'pending', value: pending),
                _Count(icon: Icons.cloud_done, label: 'sent', value: sent),
                _Count(icon: Icons.error_outline, label: 'failed', value: failed, color: failed > 0 ? theme.colorScheme.error : null),
              ],
            ),
            if (state.uploadError != null)
              Padding(
                padding: const EdgeInsets.only(top: 8),
                child: Text(
                  'Sending stopped: ${state.uploadError}',
                  style: TextStyle(color: theme.colorScheme.error),
                ),
              ),
            if (last != null && last.status == SampleStatus.rejected)
              Padding(
                padding: const EdgeInsets.only(top: 8),
                child: Text(
                  'Last rejected: ${last.message.isEmpty ? last.errorName : last.message}',
                  style: TextStyle(color: theme.colorScheme.error),
                ),
              ),
            for (final f in state.failedUploads.take(3))
              Padding(
                padding: const EdgeInsets.only(top: 4),
                child: Text(
                  '"${f.label}": ${f.errorName.isNotEmpty ? f.errorName : f.lastError}',
                  style: theme.textTheme.bodySmall?.copyWith(color: theme.colorScheme.error),
                ),
              ),
            const SizedBox(height: 8),
            Wrap(
              spacing: 8,
              children: [
                TextButton.icon(
                  onPressed: pending > 0 && !state.isFlushing ? state.flushUploads : null,
                  icon: const Icon(Icons.upload),
                  label: const Text('Send now'),
                ),
                TextButton.icon(
                  onPressed: failed > 0 && !state.isFlushing ? state.retryFailedUploads : null,
                  icon: const Icon(Icons.refresh),
                  label: const Text('Retry failed'),
                ),
                TextButton.icon(
                  onPressed: failed > 0 && !state.isFlushing ? state.discardFailedUploads : null,
                  icon: const Icon(Icons.delete_outline),
                  label: const Text('Discard failed'),
                ),
              ],
            ),
          ],
        ),
      ),
    );
  }
}

class _Count extends StatelessWidget {
  const _Count({required this.icon, required this.label, required this.value, this.color});

  final IconData icon;
  final String label;
  final int value;
  final Color? color;

  @override
  Widget build(BuildContext context) {
    return Row(
      mainAxisSize: MainAxisSize.min,
      children: [
        Icon(icon, size: 18, color: color),
        const SizedBox(width: 4),
        Text('$value $label', style: TextStyle(color: color)),
      ],
    );
  }
}

class _Thumb extends StatelessWidget {
  const _Thumb({required this.photo, required this.status});

  final QueuedPhoto photo;
  final SampleStatus? status;

  @override
  Widget build(BuildContext context) {
    final scheme = Theme.of(context).colorScheme;
    final (IconData icon, Color color) = switch (status) {
      SampleStatus.accepted => (Icons.check_circle, scheme.primary),
      SampleStatus.duplicate => (Icons.content_copy, scheme.tertiary),
      SampleStatus.rejected => (Icons.error, scheme.error),
      _ => (Icons.schedule, scheme.outline),
    };
    return Tooltip(
      message: '${photo.label} · ${status?.name ?? 'pending'}',
      child: ClipRRect(
        borderRadius: BorderRadius.circular(8),
        child: Stack(
          fit: StackFit.expand,
          children: [
            Image.memory(photo.thumbnail, fit: BoxFit.cover, cacheWidth: 200, gaplessPlayback: true),
            Positioned(
              right: 4,
              bottom: 4,
              child: DecoratedBox(
                decoration: BoxDecoration(
                  color: scheme.surface.withValues(alpha: 0.8),
                  shape: BoxShape.circle,
                ),
                child: Padding(padding: const EdgeInsets.all(2), child: Icon(icon, size: 16, color: color)),
              ),
            ),
          ],
        ),
      ),
    );
  }
}

class _NotConnected extends StatelessWidget {
  const _NotConnected();

  @override
  Widget build(BuildContext context) {
    final state = AppScope.of(context);
    return Center(
      child: Padding(
        padding: const EdgeInsets.all(32),
        child: Text(
          state.status == ConnectionStatus.connecting
              ? 'Connecting…'
              : 'Connect to a server on the Server tab first.',
          textAlign: TextAlign.center,
        ),
      ),
    );
  }
}
