/// Sensor time-series classification on the device: CSV/JSON recordings, the
/// server's resampling and windowing, accelerometer/gyroscope capture with
/// `sensors_plus`, and a classifier.
///
/// The preprocessing mirrors the server's `mobiletrain.tasks.sensor` module
/// (channels in the project's order, linear interpolation onto a uniform grid
/// at the project's rate, windows every `stride` readings or one padded
/// window, padding repeats the last reading). `test/sensor_test.dart` checks
/// it against `test/fixtures/audio_sensor/golden.json`, which the Python test
/// `tests/unit/clients/test_dart_task_fixtures.py` regenerates with the server code.
library;

import 'dart:async';
import 'dart:convert';
import 'dart:io';
import 'dart:typed_data';

import 'package:sensors_plus/sensors_plus.dart';
import 'package:tflite_flutter/tflite_flutter.dart';

import 'audio.dart' show runFloatModel;
import 'errors.dart';
import 'inference.dart';
import 'models.dart';
import 'task_specs.dart';
import 'tflite_memory.dart';

/// Timestamp column names and their factor to seconds (the server's `TIMESTAMP_COLUMNS`).
const Map<String, double> timestampColumns = {
  'timestamp': 1.0,
  'timestamp_s': 1.0,
  'time': 1.0,
  'timestamp_ms': 1e-3,
};

/// A parsed recording: readings (row-major, `length x channels.length`), with
/// either per-reading [timestampsS] or a declared [rateHz] (or neither).
class SensorRecording {
  /// A recording of [values] for [channels].
  const SensorRecording(this.channels, this.values, {this.rateHz, this.timestampsS});

  /// Channel names, one per column of [values].
  final List<String> channels;

  /// One row per reading, values in [channels] order.
  final List<List<double>> values;

  /// The declared rate (JSON `rate_hz`), if any.
  final double? rateHz;

  /// Each reading's time in seconds, if recorded.
  final List<double>? timestampsS;

  /// The recording as the CSV the server accepts (header row, one row per reading).
  String toCsv() {
    final header = [if (timestampsS != null) 'timestamp_s', ...channels].join(',');
    final rows = [
      for (var i = 0; i < values.length; i++)
        [if (timestampsS != null) timestampsS![i], ...values[i]].join(','),
    ];
    return '${[header, ...rows].join('\n')}\n';
  }
}

MobiletrainException _corrupt(String message) =>
    MobiletrainException.of(ErrorCodes.corruptSensorData, message);

MobiletrainException _missing(String message) =>
    MobiletrainException.of(ErrorCodes.sensorMissingValue, message);

double _number(Object? cell, String where) {
  if (cell is num) return cell.toDouble();
  final text = '${cell ?? ''}'.trim();
  if (text.isEmpty) throw _missing('$where is empty');
  final v = double.tryParse(text);
  if (v == null) throw _corrupt('$where is not a number');
  return v;
}

/// Parses CSV (a header of channel names, optional timestamp column) or JSON
/// `{"rate_hz", "channels", "values"}` as the server does; NaN/inf and empty
/// cells throw `sensor_missing_value`, malformed data `corrupt_sensor_data`.
SensorRecording parseSensorData(String text) {
  final trimmed = text.trimLeft();
  final recording = trimmed.startsWith('{') ? _parseJson(trimmed) : _parseCsv(text);
  for (final row in recording.values) {
    if (row.any((v) => !v.isFinite)) throw _missing('a reading is NaN or infinite');
  }
  return recording;
}

SensorRecording _parseJson(String text) {
  final Object? doc;
  try {
    doc = jsonDecode(text);
  } on FormatException catch (e) {
    throw _corrupt('not valid JSON: ${e.message}');
  }
  if (doc is! Map<String, Object?>) throw _corrupt('JSON sensor data must be an object');
  final channels = doc['channels'];
  final values = doc['values'];
  if (channels is! List || values is! List) throw _corrupt('JSON needs "channels" and "values"');
  final names = [for (final c in channels) '$c'];
  final rows = <List<double>>[];
  for (var i = 0; i < values.length; i++) {
    final row = values[i];
    if (row is! List || row.length != names.length) {
      throw _corrupt('reading $i does not have ${names.length} values');
    }
    rows.add([for (var j = 0; j < row.length; j++) _number(row[j], 'reading $i, ${names[j]}')]);
  }
  final rate = doc['rate_hz'];
  return SensorRecording(names, rows, rateHz: rate is num ? rate.toDouble() : null);
}

SensorRecording _parseCsv(String text) {
  final lines = const LineSplitter().convert(text.startsWith('\uFEFF') ? text.substring(1) : text);
  if (lines.isEmpty) throw _corrupt('CSV has no header row');
  final header = [for (final h in lines.first.split(',')) h.trim()];
  if (header.any((h) => h.isEmpty) || header.toSet().length != header.length) {
    throw _corrupt('the CSV header must name every column once');
  }
  final rows = <List<double>>[];
  for (var n = 1; n < lines.length; n++) {
    if (lines[n].trim().isEmpty) continue;
    final cells = lines[n].split(',');
    if (cells.length != header.length) {
      throw _corrupt('line ${n + 1} has ${cells.length} fields; the header has ${header.length}');
    }
    rows.add([for (var j = 0; j < cells.length; j++) _number(cells[j], 'line ${n + 1}, ${header[j]}')]);
  }
  final timeCols = [for (final h in header) if (timestampColumns.containsKey(h.toLowerCase())) h];
  if (timeCols.length > 1) throw _corrupt('more than one timestamp column: $timeCols');
  if (timeCols.isEmpty) return SensorRecording(header, rows);
  final col = header.indexOf(timeCols.first);
  final factor = timestampColumns[timeCols.first.toLowerCase()]!;
  return SensorRecording(
    [for (final h in header) if (h != timeCols.first) h],
    [for (final r in rows) [for (var j = 0; j < r.length; j++) if (j != col) r[j]]],
    timestampsS: [for (final r in rows) r[col] * factor],
  );
}

/// The project's channels in its order at its rate: `readings x channels`
/// (the server's `sensor.resample`, linear interpolation on a uniform grid).
List<Float32List> resampleSensor(SensorRecording recording, SensorSpec spec) {
  final missing = [for (final c in spec.channels) if (!recording.channels.contains(c)) c];
  if (missing.isNotEmpty) {
    throw MobiletrainException.of(
      ErrorCodes.sensorChannelsMismatch,
      'the sample lacks the channels $missing; it has ${recording.channels}',
    );
  }
  final order = [for (final c in spec.channels) recording.channels.indexOf(c)];
  final values = [for (final r in recording.values) [for (final j in order) r[j]]];
  final n = values.length;
  if (n < 2) {
    throw MobiletrainException.of(ErrorCodes.sensorTooShort, 'the recording has $n readings');
  }
  List<double> times;
  final stamps = recording.timestampsS;
  if (stamps != null) {
    times = [for (final t in stamps) t - stamps.first];
    for (var i = 1; i < n; i++) {
      if (times[i] <= times[i - 1]) throw _corrupt('timestamps must increase');
    }
  } else {
    final rate = recording.rateHz ?? spec.rateHz;
    if ((rate - spec.rateHz).abs() <= 1e-9 * spec.rateHz.abs()) {
      return [for (final r in values) Float32List.fromList(r)];
    }
    times = [for (var i = 0; i < n; i++) i / rate];
  }
  final count = (times.last * spec.rateHz + 1e-9).floor() + 1;
  final out = <Float32List>[];
  var k = 0;
  for (var i = 0; i < count; i++) {
    final t = i / spec.rateHz;
    while (k < n - 2 && times[k + 1] <= t) {
      k++;
    }
    final row = Float32List(order.length);
    for (var j = 0; j < order.length; j++) {
      final t0 = times[k], t1 = times[k + 1];
      final f = t >= t1 ? 1.0 : (t <= t0 ? 0.0 : (t - t0) / (t1 - t0));
      row[j] = values[k][j] + (values[k + 1][j] - values[k][j]) * f;
    }
    out.add(row);
  }
  return out;
}

/// Model windows of `window x channels` readings (the server's `sensor.frames`):
/// one window every `stride` readings, or one window when padding; a recording
/// shorter than a window is padded by repeating its last reading.
List<Float32List> sensorWindows(List<Float32List> readings, SensorSpec spec) {
  final n = readings.length, window = spec.window;
  Float32List flatten(int start) {
    final channels = readings.first.length;
    final out = Float32List(window * channels);
    for (var i = 0; i < window; i++) {
      out.setAll(i * channels, readings[start + i < n ? start + i : n - 1]);
    }
    return out;
  }

  if (n < window || spec.pad) return [flatten(0)];
  return [for (var s = 0; s + window <= n; s += spec.stride) flatten(s)];
}

/// CSV/JSON text to model windows (parse, resample, window).
List<Float32List> sensorWindowsFromText(String text, SensorSpec spec) =>
    sensorWindows(resampleSensor(parseSensorData(text), spec), spec);

/// Collects accelerometer / gyroscope readings with `sensors_plus` into the
/// project's channel order. Channel names understood: `x, y, z` or `acc_x,
/// acc_y, acc_z` (accelerometer, with gravity), `user_acc_x...` (gravity
/// removed), `gyro_x, gyro_y, gyro_z` (gyroscope, rad/s).
///
/// Readings carry their arrival times, so [record] returns a recording with
/// timestamps that goes through the same resampling as an uploaded CSV.
class SensorCollector {
  /// A collector for [spec]; throws if a channel names no known sensor axis.
  SensorCollector(this.spec) {
    for (final c in spec.channels) {
      if (_source(c) == null) throw ArgumentError.value(c, 'channel', 'no sensor axis of that name');
    }
  }

  /// The project's sensor contract (channels, rate, window).
  final SensorSpec spec;

  static (String, int)? _source(String channel) {
    final m = RegExp(r'^(?:(acc|accel|user_acc|gyro)_)?([xyz])$').firstMatch(channel);
    if (m == null) return null;
    final sensor = switch (m.group(1)) { null || 'acc' || 'accel' => 'acc', final s => s! };
    return (sensor, 'xyz'.indexOf(m.group(2)!));
  }

  /// Records for [duration] (default: one window) and returns the readings
  /// with their timestamps; the latest value of each sensor is sampled every
  /// time the first sensor in [SensorSpec.channels] delivers an event.
  Future<SensorRecording> record({Duration? duration}) async {
    final period = Duration(microseconds: (1e6 / spec.rateHz).round());
    final wanted = duration ?? Duration(microseconds: (spec.window * 1e6 / spec.rateHz).round());
    final sources = {for (final c in spec.channels) _source(c)!.$1};
    final latest = <String, List<double>>{};
    final driver = _source(spec.channels.first)!.$1;
    final rows = <List<double>>[];
    final times = <double>[];
    final clock = Stopwatch()..start();
    final subs = <StreamSubscription<Object>>[];
    void onEvent(String sensor, double x, double y, double z) {
      latest[sensor] = [x, y, z];
      if (sensor != driver || !sources.every(latest.containsKey)) return;
      rows.add([for (final c in spec.channels) latest[_source(c)!.$1]![_source(c)!.$2]]);
      times.add(clock.elapsedMicroseconds / 1e6);
    }

    if (sources.contains('acc')) {
      subs.add(accelerometerEventStream(samplingPeriod: period).listen((e) => onEvent('acc', e.x, e.y, e.z)));
    }
    if (sources.contains('user_acc')) {
      subs.add(userAccelerometerEventStream(samplingPeriod: period)
          .listen((e) => onEvent('user_acc', e.x, e.y, e.z)));
    }
    if (sources.contains('gyro')) {
      subs.add(gyroscopeEventStream(samplingPeriod: period).listen((e) => onEvent('gyro', e.x, e.y, e.z)));
    }
    await Future<void>.delayed(wanted);
    for (final s in subs) {
      await s.cancel();
    }
    return SensorRecording(spec.channels, rows, timestampsS: times);
  }
}

/// Runs an exported sensor model: float32 `[1, window, channels]` raw readings
/// in (normalisation is inside the model), scores out.
class SensorClassifier {
  SensorClassifier._(this._interpreter, this.manifest) : spec = SensorSpec.fromJson(_inputOf(manifest)) {
    final shape = _interpreter.getInputTensor(0).shape;
    if (shape.length != 3 || shape[1] != spec.window || shape[2] != spec.channels.length) {
      throw StateError('the model input has shape $shape; the manifest says '
          '[1, ${spec.window}, ${spec.channels.length}]');
    }
    if (_interpreter.getInputTensor(0).type != TensorType.float32) {
      throw StateError('sensor models take float32 input');
    }
    final output = manifest.json['output'];
    _outputIsLogits = output is Map<String, Object?> && output['kind'] == 'logits';
  }

  /// Loads a model file described by [manifest] (its `input.kind` is `sensor-window`).
  factory SensorClassifier.fromFile(File file, Manifest manifest, {int threads = 2}) =>
      SensorClassifier._(interpreterFromFile(file, threads: threads), manifest);

  /// A classifier from model bytes in memory.
  factory SensorClassifier.fromBuffer(Uint8List modelBytes, Manifest manifest, {int threads = 2}) =>
      SensorClassifier._(interpreterFromBytes(modelBytes, threads: threads), manifest);

  final Interpreter _interpreter;

  /// Labels, input contract and tensor details.
  final Manifest manifest;

  /// The project's sensor contract (channels, rate, window).
  final SensorSpec spec;
  late final bool _outputIsLogits;

  /// Class labels in output order.
  List<String> get labels => manifest.labels;

  /// Top-[topK] predictions for the first window of [data] (a [SensorRecording],
  /// CSV/JSON text, or one flattened window as [Float32List]).
  List<Prediction> classify(Object data, {int topK = 3}) =>
      topPredictions(probabilities(data), labels, k: topK);

  /// Class probabilities for the first window of [data] (see [classify]).
  Float32List probabilities(Object data) {
    final window = switch (data) {
      final Float32List flat => flat,
      final SensorRecording r => sensorWindows(resampleSensor(r, spec), spec).first,
      final String text => sensorWindowsFromText(text, spec).first,
      _ => throw ArgumentError.value(data, 'data', 'expected a recording, CSV/JSON text or a window'),
    };
    return runFloatModel(_interpreter, window, logits: _outputIsLogits);
  }

  /// Frees the interpreter.
  void close() => _interpreter.close();
}

Map<String, Object?> _inputOf(Manifest manifest) {
  final input = manifest.json['input'];
  return input is Map<String, Object?> ? input : const {};
}
