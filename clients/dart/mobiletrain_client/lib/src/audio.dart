/// Audio classification on the device: WAV decoding, the server's resampling and
/// clip fitting, microphone capture with the `record` package, and a classifier.
///
/// The preprocessing mirrors the server's `mobiletrain.tasks.audio_codec` step for
/// step (mono by averaging, Kaiser-windowed sinc resampling, clip to [-1, 1],
/// zero padding at the end), so a clip recorded here gives the model the same
/// numbers as the same WAV uploaded for training. `test/audio_test.dart` checks
/// this against `test/fixtures/audio_sensor/golden.json`, which the Python test
/// `tests/unit/clients/test_dart_task_fixtures.py` regenerates with the server codec.
library;

import 'dart:async';
import 'dart:io';
import 'dart:math' as math;
import 'dart:typed_data';

import 'package:record/record.dart';
import 'package:tflite_flutter/tflite_flutter.dart';

import 'errors.dart';
import 'inference.dart';
import 'models.dart';
import 'task_specs.dart';
import 'tflite_memory.dart';

const int _formatPcm = 0x0001;
const int _formatFloat = 0x0003;
const int _formatExtensible = 0xFFFE;

/// Overshoot (seconds) trimmed silently, as the server does for late recorder stops.
const double lengthToleranceSeconds = 0.01;

/// Decoded WAV audio: float frames in [-1, 1], interleaved by channel.
class WavAudio {
  /// Decoded audio of [channels] interleaved channels at [sampleRate].
  const WavAudio(this.samples, this.sampleRate, this.channels);

  /// Interleaved samples, `frames * channels` values.
  final Float32List samples;

  /// Frames per second of the file.
  final int sampleRate;

  /// Channels interleaved in [samples].
  final int channels;

  /// Number of frames (samples per channel).
  int get frames => samples.length ~/ channels;

  /// The channels averaged into one (the server's `to_mono`).
  Float32List toMono() {
    if (channels == 1) return samples;
    final out = Float32List(frames);
    for (var f = 0; f < out.length; f++) {
      var sum = 0.0;
      for (var c = 0; c < channels; c++) {
        sum += samples[f * channels + c];
      }
      out[f] = sum / channels;
    }
    return out;
  }
}

MobiletrainException _corrupt(String message) =>
    MobiletrainException.of(ErrorCodes.corruptAudio, message);

MobiletrainException _unsupported(String message) =>
    MobiletrainException.of(ErrorCodes.unsupportedAudioFormat, message);

/// Decodes a RIFF/WAVE file: PCM 8 (unsigned) / 16 / 24 / 32-bit integers or
/// 32 / 64-bit floats, plain or `WAVE_FORMAT_EXTENSIBLE`, any channel count.
/// Throws [MobiletrainException] with the server's audio codes (110, 111).
WavAudio readWav(Uint8List bytes) {
  final data = ByteData.sublistView(bytes);
  String tag(int at) => String.fromCharCodes(bytes.sublist(at, at + 4));
  if (bytes.length < 12 || tag(0) != 'RIFF' || tag(8) != 'WAVE') {
    throw _corrupt('not a RIFF/WAVE file');
  }
  int? fmtAt, fmtSize, dataAt, dataSize;
  var at = 12;
  while (at + 8 <= bytes.length) {
    final id = tag(at);
    final size = data.getUint32(at + 4, Endian.little);
    final body = at + 8;
    if (body + size > bytes.length) {
      throw _corrupt("the '$id' chunk runs past the end of the file (truncated?)");
    }
    if (id == 'fmt ' && fmtAt == null) {
      fmtAt = body;
      fmtSize = size;
    } else if (id == 'data' && dataAt == null) {
      dataAt = body;
      dataSize = size;
    }
    at = body + size + (size & 1); // chunks are padded to even sizes
  }
  if (fmtAt == null || fmtSize == null || fmtSize < 16) throw _corrupt('no fmt chunk');
  if (dataAt == null || dataSize == null) throw _corrupt('no data chunk');
  var format = data.getUint16(fmtAt, Endian.little);
  final channels = data.getUint16(fmtAt + 2, Endian.little);
  final rate = data.getUint32(fmtAt + 4, Endian.little);
  final blockAlign = data.getUint16(fmtAt + 12, Endian.little);
  final bits = data.getUint16(fmtAt + 14, Endian.little);
  if (format == _formatExtensible) {
    if (fmtSize < 40) throw _corrupt('WAVE_FORMAT_EXTENSIBLE fmt chunk is too short');
    format = data.getUint16(fmtAt + 24, Endian.little); // the sub-format GUID's first bytes
  }
  final isFloat = format == _formatFloat;
  if (format != _formatPcm && !isFloat) {
    throw _unsupported('WAV format tag 0x${format.toRadixString(16)} is compressed');
  }
  if (isFloat ? bits != 32 && bits != 64 : ![8, 16, 24, 32].contains(bits)) {
    throw _unsupported('$bits-bit ${isFloat ? 'float' : 'PCM'} samples');
  }
  if (channels == 0 || rate == 0) throw _corrupt('zero channels or sample rate');
  final width = bits ~/ 8;
  if (blockAlign != channels * width) {
    throw _corrupt('block align $blockAlign is not $channels channels x $width bytes');
  }
  if (dataSize % blockAlign != 0) throw _corrupt('data is not a whole number of frames');
  final count = dataSize ~/ width;
  final out = Float32List(count);
  for (var i = 0; i < count; i++) {
    final p = dataAt + i * width;
    double v;
    if (isFloat) {
      v = width == 4 ? data.getFloat32(p, Endian.little) : data.getFloat64(p, Endian.little);
      if (!v.isFinite) throw _corrupt('float samples include NaN or infinity');
      v = v.clamp(-1.0, 1.0).toDouble();
    } else if (width == 1) {
      v = (bytes[p] - 128) / 128.0;
    } else if (width == 2) {
      v = data.getInt16(p, Endian.little) / 32768.0;
    } else if (width == 3) {
      var n = bytes[p] | (bytes[p + 1] << 8) | (bytes[p + 2] << 16);
      if (n >= 1 << 23) n -= 1 << 24;
      v = n / (1 << 23);
    } else {
      v = data.getInt32(p, Endian.little) / 2147483648.0;
    }
    out[i] = v;
  }
  return WavAudio(out, rate, channels);
}

/// Encodes mono or interleaved float audio in [-1, 1] as a 16-bit PCM WAV file
/// (what [AudioCollector] records and the server accepts for upload).
Uint8List encodeWav16(Float32List samples, int sampleRate, {int channels = 1}) {
  final payload = samples.length * 2;
  final out = ByteData(44 + payload + (payload & 1));
  void tag(int at, String s) {
    for (var i = 0; i < 4; i++) {
      out.setUint8(at + i, s.codeUnitAt(i));
    }
  }

  tag(0, 'RIFF');
  out.setUint32(4, out.lengthInBytes - 8, Endian.little);
  tag(8, 'WAVE');
  tag(12, 'fmt ');
  out.setUint32(16, 16, Endian.little);
  out.setUint16(20, _formatPcm, Endian.little);
  out.setUint16(22, channels, Endian.little);
  out.setUint32(24, sampleRate, Endian.little);
  out.setUint32(28, sampleRate * channels * 2, Endian.little);
  out.setUint16(32, channels * 2, Endian.little);
  out.setUint16(34, 16, Endian.little);
  tag(36, 'data');
  out.setUint32(40, payload, Endian.little);
  for (var i = 0; i < samples.length; i++) {
    final v = (samples[i].clamp(-1.0, 1.0) * 32768.0).round().clamp(-32768, 32767);
    out.setInt16(44 + i * 2, v, Endian.little);
  }
  return out.buffer.asUint8List();
}

/// Modified Bessel function of the first kind, order 0 (power series).
double _besselI0(double x) {
  var sum = 1.0, term = 1.0;
  final q = x * x / 4;
  for (var k = 1; k < 200; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

double _kaiserSinc(double offset, double cutoff, double halfWidth, double beta) {
  if (offset.abs() >= halfWidth) return 0;
  final r = offset / halfWidth;
  final window = _besselI0(beta * math.sqrt(1 - r * r)) / _besselI0(beta);
  final x = cutoff * offset;
  final sinc = x == 0 ? 1.0 : math.sin(math.pi * x) / (math.pi * x);
  return cutoff * sinc * window;
}

/// Band-limited resampling of mono audio by `dstRate / srcRate`, the server's
/// `audio_codec.resample`: Kaiser-windowed sinc (16 zero crossings, roll-off
/// 0.94, beta 8.6), every phase normalised to unit DC gain, output length
/// `ceil(len * dst / src)`.
Float32List resampleAudio(
  Float32List signal,
  int srcRate,
  int dstRate, {
  int zeroCrossings = 16,
  double rolloff = 0.94,
  double beta = 8.6,
}) {
  if (srcRate == dstRate || signal.isEmpty) return Float32List.fromList(signal);
  final g = _gcd(srcRate, dstRate);
  final up = dstRate ~/ g, down = srcRate ~/ g;
  final cutoff = rolloff * math.min(1.0, up / down);
  final halfWidth = zeroCrossings / cutoff;
  final reach = halfWidth.ceil();
  final taps = 2 * reach; // input offsets -reach+1 .. reach around floor(t)
  final nOut = (signal.length * up + down - 1) ~/ down;
  final phases = <int, Float64List>{};
  Float64List weightsOf(int phase) => phases.putIfAbsent(phase, () {
        final w = Float64List(taps);
        var sum = 0.0;
        for (var k = 0; k < taps; k++) {
          w[k] = _kaiserSinc(phase / up - (k - reach + 1), cutoff, halfWidth, beta);
          sum += w[k];
        }
        for (var k = 0; k < taps; k++) {
          w[k] /= sum;
        }
        return w;
      });
  final out = Float32List(nOut);
  for (var n = 0; n < nOut; n++) {
    final base = n * down ~/ up;
    final w = weightsOf(n * down % up);
    var acc = 0.0;
    for (var k = 0; k < taps; k++) {
      final i = base + k - reach + 1; // index into the unpadded signal
      if (i >= 0 && i < signal.length) acc += signal[i] * w[k];
    }
    out[n] = acc;
  }
  return out;
}

int _gcd(int a, int b) => b == 0 ? a : _gcd(b, a % b);

/// Cuts or zero-pads mono audio into clips of `spec.clipSamples` (the server's
/// `fit_clips`): longer audio throws `audio_too_long` unless the spec splits.
List<Float32List> fitClips(Float32List signal, AudioSpec spec) {
  final clip = spec.clipSamples;
  final tolerance = (lengthToleranceSeconds * spec.sampleRateHz).round();
  final n = signal.length;
  if (n > clip + tolerance && !spec.splitLongClips) {
    throw MobiletrainException.of(
      ErrorCodes.audioTooLong,
      '$n samples after resampling, more than the clip of $clip',
    );
  }
  var count = 1;
  if (n > clip + tolerance) {
    count = (n + clip - 1) ~/ clip;
    if (n - (count - 1) * clip <= tolerance) count -= 1; // recorder overshoot
  }
  return [
    for (var c = 0; c < count; c++)
      Float32List(clip)
        ..setRange(0, math.max(0, math.min(clip, n - c * clip)), signal, c * clip),
  ];
}

/// WAV bytes to model inputs: mono, resampled to the spec's rate, clipped to
/// [-1, 1], fitted to clips (more than one only when the spec splits).
List<Float32List> audioClipsFromWav(Uint8List wav, AudioSpec spec) {
  final audio = readWav(wav);
  final mono = resampleAudio(audio.toMono(), audio.sampleRate, spec.sampleRateHz);
  for (var i = 0; i < mono.length; i++) {
    mono[i] = mono[i].clamp(-1.0, 1.0).toDouble();
  }
  return fitClips(mono, spec);
}

/// Little-endian 16-bit PCM bytes to floats in [-1, 1] (int16 / 32768).
Float32List pcm16ToFloat(Uint8List bytes) {
  final data = ByteData.sublistView(bytes);
  final out = Float32List(bytes.length ~/ 2);
  for (var i = 0; i < out.length; i++) {
    out[i] = data.getInt16(i * 2, Endian.little) / 32768.0;
  }
  return out;
}

/// Records clips from the microphone as 16-bit mono PCM at the project's rate
/// with the `record` package (`AudioRecorder.startStream`, `AudioEncoder.pcm16bits`).
///
/// Platforms may deliver another rate than asked for; [record] therefore
/// passes the samples through the same resampling as an uploaded WAV.
class AudioCollector {
  /// A collector for [spec]; [recorder] defaults to a new `AudioRecorder`.
  AudioCollector(this.spec, {AudioRecorder? recorder}) : _recorder = recorder ?? AudioRecorder();

  /// The project's audio contract (rate, clip length).
  final AudioSpec spec;
  final AudioRecorder _recorder;

  /// Whether the app may record (asks the user on first use).
  Future<bool> hasPermission() => _recorder.hasPermission();

  /// Records [duration] (default: one clip) and returns mono float PCM at the
  /// spec's rate, not yet fitted to clips (see [fitClips] / [recordWav]).
  Future<Float32List> record({Duration? duration, int recordedRate = 0}) async {
    final rate = recordedRate > 0 ? recordedRate : spec.sampleRateHz;
    final wanted = duration ?? Duration(milliseconds: spec.clipMs);
    final stream = await _recorder.startStream(
      RecordConfig(encoder: AudioEncoder.pcm16bits, sampleRate: rate, numChannels: 1),
    );
    final chunks = BytesBuilder(copy: false);
    final done = Completer<void>();
    final sub = stream.listen(chunks.add, onError: done.completeError, onDone: done.complete);
    await Future.any([done.future, Future<void>.delayed(wanted)]);
    await _recorder.stop();
    await sub.cancel();
    final samples = pcm16ToFloat(chunks.takeBytes());
    return resampleAudio(samples, rate, spec.sampleRateHz);
  }

  /// Records one clip and encodes it as a 16-bit mono WAV ready for upload.
  Future<Uint8List> recordWav({Duration? duration}) async =>
      encodeWav16(await record(duration: duration), spec.sampleRateHz);

  /// Releases the recorder.
  Future<void> dispose() => _recorder.dispose();
}

/// Runs an exported audio model: float32 PCM `[1, clip_samples]` in, scores out.
/// The log-mel front end is inside the model, so the app only feeds samples.
class AudioClassifier {
  AudioClassifier._(this._interpreter, this.manifest)
      : spec = AudioSpec.fromJson(_inputOf(manifest)) {
    final shape = _interpreter.getInputTensor(0).shape;
    if (shape.length != 2 || shape[1] != spec.clipSamples) {
      throw StateError('the model input has shape $shape; the manifest says [1, ${spec.clipSamples}]');
    }
    if (_interpreter.getInputTensor(0).type != TensorType.float32) {
      throw StateError('audio models take float32 PCM input');
    }
    final output = manifest.json['output'];
    _outputIsLogits = output is Map<String, Object?> && output['kind'] == 'logits';
  }

  /// Loads a model file described by [manifest] (its `input.kind` is `audio-waveform`).
  factory AudioClassifier.fromFile(File file, Manifest manifest, {int threads = 2}) =>
      AudioClassifier._(interpreterFromFile(file, threads: threads), manifest);

  /// A classifier from model bytes in memory.
  factory AudioClassifier.fromBuffer(Uint8List modelBytes, Manifest manifest, {int threads = 2}) =>
      AudioClassifier._(interpreterFromBytes(modelBytes, threads: threads), manifest);

  final Interpreter _interpreter;

  /// Labels, input contract and tensor details.
  final Manifest manifest;

  /// The project's audio contract (rate, clip length).
  final AudioSpec spec;
  late final bool _outputIsLogits;

  /// Class labels in output order.
  List<String> get labels => manifest.labels;

  /// Top-[topK] predictions for one clip: WAV bytes or mono float PCM at the spec's rate.
  List<Prediction> classify(Object audio, {int topK = 3}) =>
      topPredictions(probabilities(audio), labels, k: topK);

  /// Class probabilities for the first clip of [audio] (WAV bytes or float PCM).
  Float32List probabilities(Object audio) {
    final clip = switch (audio) {
      final Float32List pcm => fitClips(pcm, spec).first,
      final Uint8List wav => audioClipsFromWav(wav, spec).first,
      _ => throw ArgumentError.value(audio, 'audio', 'expected WAV bytes or Float32List PCM'),
    };
    return runFloatModel(_interpreter, clip, logits: _outputIsLogits);
  }

  /// Frees the interpreter.
  void close() => _interpreter.close();
}

Map<String, Object?> _inputOf(Manifest manifest) {
  final input = manifest.json['input'];
  return input is Map<String, Object?> ? input : const {};
}

/// Runs a float32-input model (float32 or int8/uint8 output) on [values] and returns the
/// scores, with a softmax when the manifest says the output is [logits]
/// (shared by [AudioClassifier] and `SensorClassifier`).
Float32List runFloatModel(Interpreter interpreter, Float32List values, {bool logits = false}) {
  final outCount = interpreter.getOutputTensor(0).shape.fold<int>(1, (a, b) => a * b);
  final scores = Float32List(outCount);
  interpreter.runInference([values.buffer.asUint8List(values.offsetInBytes, values.lengthInBytes)]);
  final output = interpreter.getOutputTensor(0);
  final raw = Uint8List.fromList(output.data);
  if (output.type == TensorType.float32) {
    scores.setAll(0, raw.buffer.asFloat32List(0, outCount));
  } else if (output.type == TensorType.int8 || output.type == TensorType.uint8) {
    // int8 exports keep the float input (the front end) but may quantise the scores.
    final q = output.params;
    final signed = raw.buffer.asInt8List(0, outCount);
    for (var i = 0; i < outCount; i++) {
      final v = output.type == TensorType.int8 ? signed[i] : raw[i];
      scores[i] = (v - q.zeroPoint) * q.scale;
    }
  } else {
    throw StateError('unsupported model output type ${output.type}');
  }
  if (!logits) return scores;
  final top = scores.reduce(math.max);
  var sum = 0.0;
  for (var i = 0; i < scores.length; i++) {
    scores[i] = math.exp(scores[i] - top);
    sum += scores[i];
  }
  for (var i = 0; i < scores.length; i++) {
    scores[i] /= sum;
  }
  return scores;
}
