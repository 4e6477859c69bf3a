/// The task-specific parts of a project's input contract: [AudioSpec] for
/// `audio-classification`, [SensorSpec] for `sensor-classification`.
///
/// Plain data without plugin imports, so the web-safe library (and
/// `InputSpec`) can carry them; the preprocessing lives in `audio.dart` and
/// `sensor.dart`.
library;

/// The audio part of a project's input contract (`input_spec.audio` / manifest `input`).
class AudioSpec {
  /// A spec; the defaults are the server's (16 kHz, 1 s, reject longer clips).
  const AudioSpec({this.sampleRateHz = 16000, this.clipMs = 1000, this.splitLongClips = false});

  /// Reads `{sample_rate_hz, clip_ms, long_clips}` (REST input_spec.audio or manifest input).
  factory AudioSpec.fromJson(Map<String, Object?> json) => AudioSpec(
        sampleRateHz: (json['sample_rate_hz'] as num?)?.toInt() ?? 16000,
        clipMs: (json['clip_ms'] as num?)?.toInt() ?? 1000,
        splitLongClips: json['long_clips'] == 'split',
      );

  /// Samples per second the model expects.
  final int sampleRateHz;

  /// Clip length in milliseconds.
  final int clipMs;

  /// `long_clips = split`: longer audio becomes several clips instead of an error.
  final bool splitLongClips;

  /// Samples per clip: `sample_rate_hz * clip_ms / 1000`.
  int get clipSamples => sampleRateHz * clipMs ~/ 1000;
}

/// The sensor part of a project's input contract (`input_spec.sensor` / manifest `input`).
class SensorSpec {
  /// A spec; the defaults are the server's (x, y, z at 50 Hz, windows of 100 every 50).
  const SensorSpec({
    this.channels = const ['x', 'y', 'z'],
    this.rateHz = 50.0,
    this.window = 100,
    this.stride = 50,
    this.pad = false,
  });

  /// Reads `{channels, rate_hz, window, stride, framing}`.
  factory SensorSpec.fromJson(Map<String, Object?> json) => SensorSpec(
        channels: [for (final c in (json['channels'] as List<Object?>? ?? const ['x', 'y', 'z'])) '$c'],
        rateHz: (json['rate_hz'] as num?)?.toDouble() ?? 50.0,
        window: (json['window'] as num?)?.toInt() ?? 100,
        stride: (json['stride'] as num?)?.toInt() ?? 50,
        pad: json['framing'] == 'pad',
      );

  /// Channel names in model order.
  final List<String> channels;

  /// Readings per second the model expects.
  final double rateHz;

  /// Readings per model window.
  final int window;

  /// Readings between window starts.
  final int stride;

  /// `framing = pad`: one window per recording instead of windows with a stride.
  final bool pad;
}
