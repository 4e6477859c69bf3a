/// Train: start a job and follow it live (batch progress, loss and accuracy per epoch).
library;

import 'dart:async';
import 'dart:math' as math;

import 'package:fl_chart/fl_chart.dart';
import 'package:flutter/material.dart';
import 'package:mobiletrain_client/on_device.dart';

import 'app_state.dart';

/// Starts training jobs and charts their progress from `client.watchJob`.
class TrainPage extends StatefulWidget {
  /// Creates the train page.
  const TrainPage({super.key});

  @override
  State<TrainPage> createState() => _TrainPageState();
}

class _TrainPageState extends State<TrainPage> {
  final TextEditingController _jobIdField = TextEditingController();
  double _epochs = 10;
  bool _starting = false;

  String? _jobId;
  StreamSubscription<JobEvent>? _sub;
  bool _watching = false;
  JobState? _state;
  String? _error;
  ProgressInfo? _progress;
  final List<EpochInfo> _history = [];
  EvaluationInfo? _evaluation;
  final List<String> _logs = [];
  int? _modelVersion;

  @override
  void dispose() {
    unawaited(_sub?.cancel());
    _jobIdField.dispose();
    super.dispose();
  }

  Future<void> _start() async {
    final state = AppScope.read(context);
    final client = state.client;
    if (client == null) return;
    setState(() {
      _starting = true;
      _error = null;
    });
    try {
      final job = await client.startJob(state.projectRef, TrainingOptions(epochs: _epochs.round()));
      if (!mounted) return;
      _watch(job.id, initialState: job.state);
    } on Object catch (e) {
      if (!mounted) return;
      setState(() => _error = _explainStartError(e));
    } finally {
      if (mounted) setState(() => _starting = false);
    }
  }

  static String _explainStartError(Object e) {
    final text = describeError(e);
    return switch (e) {
      // Device tokens may upload and watch, but not train.
      MobiletrainException(code: ErrorCodes.permissionDenied) =>
        '$text\nDevice tokens cannot start training: start it on the dashboard '
            'or use an admin token, then watch the job here by its id.',
      MobiletrainException(code: ErrorCodes.notEnoughData) =>
        '$text\nUpload more labelled photos (several per label) first.',
      _ => text,
    };
  }

  /// Follows [jobId] from its first event; the client reconnects on its own
  /// and the stream ends after the final state event.
  void _watch(String jobId, {JobState? initialState}) {
    final client = AppScope.read(context).client;
    if (client == null) return;
    unawaited(_sub?.cancel());
    setState(() {
      _jobId = jobId;
      _watching = true;
      _state = initialState;
      _error = null;
      _progress = null;
      _history.clear();
      _evaluation = null;
      _logs.clear();
      _modelVersion = null;
    });
    _sub = client
        .watchJob(jobId)
        .listen(
          _onEvent,
          onError: (Object e) {
            if (mounted) setState(() => _error = describeError(e));
          },
          onDone: () {
            if (mounted) setState(() => _watching = false);
          },
        );
  }

  void _onEvent(JobEvent event) {
    if (!mounted) return;
    setState(() {
      switch (event.kind) {
        case EventKind.state:
          _state = event.state ?? _state;
          if (event.error.isNotEmpty) _error = event.error;
        case EventKind.progress:
          _progress = event.progress;
        case EventKind.epoch:
          final epoch = event.epoch;
          if (epoch != null) {
            // A replayed epoch (reconnect) replaces the earlier point.
            _history.removeWhere((e) => e.epoch == epoch.epoch);
            _history
              ..add(epoch)
              ..sort((a, b) => a.epoch.compareTo(b.epoch));
          }
        case EventKind.evaluation:
          _evaluation = event.evaluation;
        case EventKind.log:
          final line = event.log;
          if (line != null && line.isNotEmpty) {
            _logs.add(line);
            if (_logs.length > 50) _logs.removeAt(0);
          }
        case EventKind.unspecified:
          break;
      }
    });
    if (event.isTerminal && event.state == JobState.succeeded) {
      unawaited(_fetchModelVersion(event.jobId));
    }
  }

  Future<void> _fetchModelVersion(String jobId) async {
    final client = AppScope.read(context).client;
    if (client == null) return;
    try {
      final job = await client.getJob(jobId);
      if (mounted && job.id == _jobId) setState(() => _modelVersion = job.modelVersion);
    } on Object catch (e) {
      debugPrint('getJob failed: ${describeError(e)}');
    }
  }

  Future<void> _cancel() async {
    final client = AppScope.read(context).client;
    final jobId = _jobId;
    if (client == null || jobId == null) return;
    try {
      await client.cancelJob(jobId);
    } on Object catch (e) {
      if (mounted) setState(() => _error = describeError(e));
    }
  }

  @override
  Widget build(BuildContext context) {
    final app = AppScope.of(context);
    if (app.client == null) {
      return const Center(child: Text('Connect to a server on the Server tab first.'));
    }
    final theme = Theme.of(context);
    final running = _watching && !(_state?.isTerminal ?? false);
    return ListView(
      padding: const EdgeInsets.all(16),
      children: [
        Text('Epochs: ${_epochs.round()}', style: theme.textTheme.titleMedium),
        Slider(
          value: _epochs,
          min: 1,
          max: 50,
          divisions: 49,
          label: '${_epochs.round()}',
          onChanged: running ? null : (v) => setState(() => _epochs = v),
        ),
        Row(
          children: [
            Expanded(
              child: FilledButton.icon(
                onPressed: _starting || running ? null : _start,
                icon: const Icon(Icons.play_arrow),
                label: Text(_starting ? 'Starting…' : 'Start training'),
              ),
            ),
            const SizedBox(width: 12),
            OutlinedButton.icon(
              onPressed: running ? _cancel : null,
              icon: const Icon(Icons.stop),
              label: const Text('Cancel'),
            ),
          ],
        ),
        const SizedBox(height: 12),
        Row(
          children: [
            Expanded(
              child: TextField(
                controller: _jobIdField,
                decoration: const InputDecoration(
                  labelText: 'Or watch a job by id',
                  border: OutlineInputBorder(),
                  isDense: true,
                ),
                autocorrect: false,
                onSubmitted: (v) {
                  if (v.trim().isNotEmpty) _watch(v.trim());
                },
              ),
            ),
            const SizedBox(width: 8),
            IconButton.filledTonal(
              tooltip: 'Watch',
              icon: const Icon(Icons.visibility),
              onPressed: () {
                final id = _jobIdField.text.trim();
                if (id.isNotEmpty) _watch(id);
              },
            ),
          ],
        ),
        if (_jobId != null) ...[
          const SizedBox(height: 16),
          _JobStatusCard(
            jobId: _jobId!,
            state: _state,
            error: _error,
            progress: _progress,
            watching: _watching,
            modelVersion: _modelVersion,
            evaluation: _evaluation,
          ),
        ] else if (_error != null) ...[
          const SizedBox(height: 16),
          Text(_error!, style: TextStyle(color: theme.colorScheme.error)),
        ],
        if (_history.isNotEmpty) ...[
          const SizedBox(height: 16),
          _MetricChart(
            title: 'Loss',
            epochs: _history.last.epochs,
            series: [
              _Series('train', theme.colorScheme.primary, [for (final e in _history) FlSpot(e.epoch.toDouble(), e.loss)]),
              if (_hasValues(_history.map((e) => e.valLoss)))
                _Series('validation', theme.colorScheme.tertiary, [
                  for (final e in _history) FlSpot(e.epoch.toDouble(), e.valLoss),
                ]),
            ],
          ),
          const SizedBox(height: 16),
          _MetricChart(
            title: 'Accuracy',
            epochs: _history.last.epochs,
            minY: 0,
            maxY: 1,
            series: [
              _Series('train', theme.colorScheme.primary, [
                for (final e in _history) FlSpot(e.epoch.toDouble(), e.accuracy),
              ]),
              if (_hasValues(_history.map((e) => e.valAccuracy)))
                _Series('validation', theme.colorScheme.tertiary, [
                  for (final e in _history) FlSpot(e.epoch.toDouble(), e.valAccuracy),
                ]),
            ],
          ),
        ],
        if (_logs.isNotEmpty) ...[
          const SizedBox(height: 16),
          Text('Log', style: theme.textTheme.titleMedium),
          const SizedBox(height: 4),
          for (final line in _logs.reversed.take(8))
            Text(line, style: theme.textTheme.bodySmall?.copyWith(fontFamily: 'monospace')),
        ],
      ],
    );
  }

  /// False when the server sent no validation metric (all zero or NaN).
  static bool _hasValues(Iterable<double> values) => values.any((v) => v.isFinite && v != 0);
}

class _JobStatusCard extends StatelessWidget {
  const _JobStatusCard({
    required this.jobId,
    required this.state,
    required this.error,
    required this.progress,
    required this.watching,
    required this.modelVersion,
    required this.evaluation,
  });

  final String jobId;
  final JobState? state;
  final String? error;
  final ProgressInfo? progress;
  final bool watching;
  final int? modelVersion;
  final EvaluationInfo? evaluation;

  @override
  Widget build(BuildContext context) {
    final theme = Theme.of(context);
    final p = progress;
    final stateColor = switch (state) {
      JobState.succeeded => theme.colorScheme.primary,
      JobState.failed || JobState.cancelled => theme.colorScheme.error,
      _ => theme.colorScheme.onSurface,
    };
    return Card(
      child: Padding(
        padding: const EdgeInsets.all(16),
        child: Column(
          crossAxisAlignment: CrossAxisAlignment.start,
          children: [
            Row(
              children: [
                Expanded(
                  child: Text(
                    'Job ${jobId.length > 8 ? jobId.substring(0, 8) : jobId}',
                    style: theme.textTheme.titleMedium,
                  ),
                ),
                Text(
                  (state ?? JobState.unspecified) == JobState.unspecified ? 'waiting…' : state!.name,
                  style: theme.textTheme.titleMedium?.copyWith(color: stateColor),
                ),
                if (watching && !(state?.isTerminal ?? false)) ...[
                  const SizedBox(width: 8),
                  const SizedBox.square(dimension: 16, child: CircularProgressIndicator(strokeWidth: 2)),
                ],
              ],
            ),
            if (p != null && !(state?.isTerminal ?? false)) ...[
              const SizedBox(height: 12),
              Text('Epoch ${p.epoch}/${p.epochs} · batch ${p.batch}/${p.batches}'),
              const SizedBox(height: 6),
              LinearProgressIndicator(
                value: p.batches > 0 ? (p.batch / p.batches).clamp(0.0, 1.0) : null,
                minHeight: 6,
                borderRadius: BorderRadius.circular(3),
              ),
              const SizedBox(height: 6),
              LinearProgressIndicator(
                value: _overall(p),
                minHeight: 3,
                borderRadius: BorderRadius.circular(2),
                color: theme.colorScheme.tertiary,
              ),
              const SizedBox(height: 6),
              Text(
                '${p.samplesPerSecond.toStringAsFixed(1)} samples/s · '
                'about ${_duration(p.etaSeconds)} left',
                style: theme.textTheme.bodySmall,
              ),
            ],
            if (evaluation != null) ...[
              const SizedBox(height: 12),
              Text('Validation accuracy ${(evaluation!.accuracy * 100).toStringAsFixed(1)} %'),
              for (final MapEntry(:key, :value) in evaluation!.tfliteAccuracy.entries)
                Text(
                  '  ${key.wireName}: ${(value * 100).toStringAsFixed(1)} %',
                  style: theme.textTheme.bodySmall,
                ),
            ],
            if (modelVersion != null && modelVersion! > 0) ...[
              const SizedBox(height: 12),
              Text(
                'Published model v$modelVersion. Download it on the Classify tab.',
                style: TextStyle(color: theme.colorScheme.primary),
              ),
            ],
            if (error != null && error!.isNotEmpty) ...[
              const SizedBox(height: 12),
              Text(error!, style: TextStyle(color: theme.colorScheme.error)),
            ],
          ],
        ),
      ),
    );
  }

  static double? _overall(ProgressInfo p) {
    if (p.epochs <= 0 || p.batches <= 0) return null;
    final done = (p.epoch - 1) + p.batch / p.batches;
    return (done / p.epochs).clamp(0.0, 1.0);
  }

  static String _duration(double seconds) {
    if (!seconds.isFinite || seconds < 0) return '?';
    final s = seconds.round();
    return s < 60 ? '$s s' : '${s ~/ 60} min ${s % 60} s';
  }
}

class _Series {
  const _Series(this.name, this.color, this.spots);

  final String name;
  final Color color;
  final List<FlSpot> spots;
}

class _MetricChart extends StatelessWidget {
  const _MetricChart({
    required this.title,
    required this.epochs,
    required this.series,
    this.minY,
    this.maxY,
  });

  final String title;
  final int epochs;
  final List<_Series> series;
  final double? minY;
  final double? maxY;

  @override
  Widget build(BuildContext context) {
    final theme = Theme.of(context);
    final maxX = math.max(epochs, 2).toDouble();
    final xInterval = math.max(1, (maxX / 6).ceil()).toDouble();
    const hidden = AxisTitles(sideTitles: SideTitles(showTitles: false));
    return Column(
      crossAxisAlignment: CrossAxisAlignment.start,
      children: [
        Row(
          children: [
            Text(title, style: theme.textTheme.titleMedium),
            const Spacer(),
            for (final s in series) ...[
              Icon(Icons.circle, size: 10, color: s.color),
              const SizedBox(width: 4),
              Text(s.name, style: theme.textTheme.bodySmall),
              const SizedBox(width: 12),
            ],
          ],
        ),
        const SizedBox(height: 8),
        SizedBox(
          height: 180,
          child: LineChart(
            LineChartData(
              minX: 1,
              maxX: maxX,
              minY: minY,
              maxY: maxY,
              clipData: const FlClipData.all(),
              gridData: FlGridData(
                drawVerticalLine: false,
                getDrawingHorizontalLine: (_) => FlLine(
                  color: theme.colorScheme.outlineVariant.withValues(alpha: 0.6),
                  strokeWidth: 1,
                ),
              ),
              borderData: FlBorderData(show: false),
              titlesData: FlTitlesData(
                topTitles: hidden,
                rightTitles: hidden,
                leftTitles: AxisTitles(
                  sideTitles: SideTitles(
                    showTitles: true,
                    reservedSize: 40,
                    getTitlesWidget: (value, meta) => SideTitleWidget(
                      meta: meta,
                      child: Text(meta.formattedValue, style: theme.textTheme.labelSmall),
                    ),
                  ),
                ),
                bottomTitles: AxisTitles(
                  axisNameWidget: Text('epoch', style: theme.textTheme.labelSmall),
                  sideTitles: SideTitles(
                    showTitles: true,
                    reservedSize: 24,
                    interval: xInterval,
                    getTitlesWidget: (value, meta) => SideTitleWidget(
                      meta: meta,
                      child: Text('${value.round()}', style: theme.textTheme.labelSmall),
                    ),
                  ),
                ),
              ),
              lineBarsData: [
                for (final s in series)
                  LineChartBarData(
                    spots: s.spots,
                    color: s.color,
                    barWidth: 2.5,
                    isCurved: true,
                    preventCurveOverShooting: true,
                    dotData: FlDotData(show: s.spots.length <= 20),
                  ),
              ],
            ),
            duration: const Duration(milliseconds: 250),
          ),
        ),
      ],
    );
  }
}
