// Audio preprocessing against the server: test/fixtures/audio_sensor/golden.json
// holds WAV inputs and what the server's audio_codec.decode_clips makes of them
// (regenerated and checked by tests/unit/clients/test_dart_task_fixtures.py).
import 'dart:convert';
import 'dart:io';
import 'dart:typed_data';

import 'package:flutter_test/flutter_test.dart';
import 'package:mobiletrain_client/src/audio.dart';
import 'package:mobiletrain_client/src/errors.dart';
import 'package:mobiletrain_client/src/models.dart';
import 'package:mobiletrain_client/src/task_specs.dart';

Map<String, Object?> golden() =>
    jsonDecode(File('test/fixtures/audio_sensor/golden.json').readAsStringSync()) as Map<String, Object?>;

void main() {
  final cases = (golden()['audio']! as List<Object?>).cast<Map<String, Object?>>();

  for (final c in cases) {
    test('audioClipsFromWav matches the server: ${c['name']}', () {
      final wav = base64Decode(c['wav_base64']! as String);
      final spec = AudioSpec.fromJson(c['spec']! as Map<String, Object?>);
      final expected = (c['clips']! as List<Object?>).cast<List<Object?>>();
      final clips = audioClipsFromWav(wav, spec);
      expect(clips.length, expected.length);
      for (var k = 0; k < clips.length; k++) {
        expect(clips[k].length, spec.clipSamples);
        for (var i = 0; i < clips[k].length; i++) {
          expect(clips[k][i], closeTo((expected[k][i]! as num).toDouble(), 1e-5), reason: 'clip $k sample $i');
        }
      }
    });
  }

  test('a 16-bit WAV written here reads back to the same samples', () {
    final pcm = Float32List.fromList([0, 0.5, -0.5, 0.25, -1, 0.999]);
    final audio = readWav(encodeWav16(pcm, 16000));
    expect(audio.sampleRate, 16000);
    expect(audio.channels, 1);
    for (var i = 0; i < pcm.length; i++) {
      expect(audio.samples[i], closeTo(pcm[i], 1 / 32768));
    }
  });

  test('longer audio than the clip is rejected with audio_too_long unless split', () {
    final wav = encodeWav16(Float32List(16000 * 2), 16000);
    expect(
      () => audioClipsFromWav(wav, const AudioSpec()),
      throwsA(isA<MobiletrainException>().having((e) => e.code, 'code', ErrorCodes.audioTooLong)),
    );
    expect(audioClipsFromWav(wav, const AudioSpec(splitLongClips: true)).length, 2);
  });

  test('not a WAV file is corrupt_audio', () {
    expect(
      () => readWav(Uint8List.fromList(utf8.encode('RIFF....WAVEjunk'))),
      throwsA(isA<MobiletrainException>().having((e) => e.code, 'code', ErrorCodes.corruptAudio)),
    );
  });

  test('InputSpec carries the audio contract of an audio project', () {
    final spec = InputSpec.fromJson({
      'width': 0, 'height': 0, 'color_mode': 'rgb', 'normalization': 'zero-one',
      'audio': {'sample_rate_hz': 8000, 'clip_ms': 500, 'long_clips': 'split', 'clip_samples': 4000},
      'sensor': null,
    });
    expect(spec.audio!.clipSamples, 4000);
    expect(spec.audio!.splitLongClips, isTrue);
    expect(spec.sensor, isNull);
  });
}
