"""Golden fixtures for the Dart client's audio and sensor preprocessing, made by the server code.

``clients/dart/mobiletrain_client/test/fixtures/audio_sensor/golden.json`` holds inputs (WAV bytes
as base64, CSV/JSON text) with the project spec and what the server's own codecs make of them
(``audio_codec.decode_clips``, ``sensor.decode``). The Dart tests (``audio_test.dart``,
``sensor_test.dart``) run ``audioClipsFromWav`` / ``sensorWindowsFromText`` on the same inputs and
compare. This test rebuilds the file from its seeds with the current server code and compares, so
a change to the server's resampling, padding or windowing fails here until the fixture (and the
Dart port) follow. Regenerate with ``python tests/unit/clients/test_dart_task_fixtures.py``.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mobiletrain.core.types import AudioSpec, LongClips, SensorFraming, SensorSpec
from mobiletrain.tasks import audio_codec, sensor

FIXTURE = (
    Path(__file__).resolve().parents[3]
    / "clients/dart/mobiletrain_client/test/fixtures/audio_sensor/golden.json"
)
DIGITS = 7  # float32 needs ~7 significant digits; the Dart tests compare with atol 1e-5


def _round(values: np.ndarray) -> list[Any]:
    return np.round(values.astype(np.float64), DIGITS).tolist()  # type: ignore[no-any-return]


def _tone(rate: int, seconds: float, freqs: tuple[float, ...], seed: int) -> np.ndarray:
    """A few sines plus a little noise: content near and above the target Nyquist, so the
    low-pass of the resampler matters."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(rate * seconds)) / rate
    x = sum(np.sin(2 * np.pi * f * t + i) for i, f in enumerate(freqs)) / (len(freqs) + 1)
    return np.asarray(x + 0.05 * rng.standard_normal(t.size))


def _audio_cases() -> list[dict[str, Any]]:
    stereo = np.stack(
        [_tone(44_100, 0.1, (440.0, 7_900.0), 1), _tone(44_100, 0.1, (1_000.0, 12_000.0), 2)],
        axis=1,
    )
    cases = [
        ("stereo_44k1_pcm16_padded", audio_codec.encode_wav(stereo, 44_100, bits=16),
         AudioSpec(16_000, 150, LongClips.REJECT)),
        ("mono_48k_float32_split", audio_codec.encode_wav(
            _tone(48_000, 0.25, (300.0, 9_000.0), 3), 48_000, bits=32, is_float=True),
         AudioSpec(16_000, 100, LongClips.SPLIT)),
        ("mono_8k_pcm24_upsampled", audio_codec.encode_wav(
            _tone(8_000, 0.06, (250.0, 3_000.0), 4), 8_000, bits=24),
         AudioSpec(16_000, 80, LongClips.REJECT)),
        ("stereo_22k05_pcm8", audio_codec.encode_wav(
            np.stack([_tone(22_050, 0.06, (500.0,), 5), _tone(22_050, 0.06, (700.0,), 6)], axis=1),
            22_050, bits=8),
         AudioSpec(16_000, 80, LongClips.REJECT)),
    ]  # fmt: skip
    return [
        {
            "name": name,
            "wav_base64": base64.b64encode(wav).decode("ascii"),
            "spec": {
                "sample_rate_hz": spec.sample_rate_hz,
                "clip_ms": spec.clip_ms,
                "long_clips": spec.long_clips.value,
            },
            "clips": [_round(c) for c in audio_codec.decode_clips(wav, spec)],
        }
        for name, wav, spec in cases
    ]


def _motion(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 10.0
    return np.stack(
        [np.sin(t), np.cos(1.7 * t) + 9.81, 0.5 * np.sin(3.1 * t), rng.standard_normal(n)], axis=1
    ) + 0.01 * rng.standard_normal((n, 4))


def _sensor_cases() -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    # Irregular phone timestamps (ms), columns in another order plus an extra channel.
    values = _motion(90, 8)
    stamps = np.cumsum(rng.uniform(15.0, 25.0, 90)) + 1_000.0
    csv_ts = "timestamp_ms,z,temp,x,y\n" + "".join(
        f"{s:.3f},{v[2]:.6f},{v[3]:.6f},{v[0]:.6f},{v[1]:.6f}\n"
        for s, v in zip(stamps, values, strict=True)
    )
    # No timestamps: taken at the project's rate, so no interpolation, 3 windows.
    plain = _motion(45, 9)
    csv_plain = "x,y,z\n" + "".join(f"{v[0]:.5f},{v[1]:.5f},{v[2]:.5f}\n" for v in plain)
    # JSON at 100 Hz into a 50 Hz project, one padded window.
    js = _motion(40, 10)
    json_text = json.dumps(
        {"rate_hz": 100, "channels": ["x", "y", "z"], "values": np.round(js[:, :3], 5).tolist()}
    )
    cases = [
        ("csv_timestamps_reordered", csv_ts, SensorSpec(("x", "y", "z"), 50.0, 20, 10)),
        ("csv_plain_windows", csv_plain, SensorSpec(("x", "y", "z"), 50.0, 20, 12)),
        ("json_100hz_padded", json_text,
         SensorSpec(("x", "y", "z"), 50.0, 30, 30, SensorFraming.PAD)),
    ]  # fmt: skip
    return [
        {
            "name": name,
            "text": text,
            "spec": {
                "channels": list(spec.channels),
                "rate_hz": spec.rate_hz,
                "window": spec.window,
                "stride": spec.stride,
                "framing": spec.framing.value,
            },
            "windows": [_round(w.reshape(-1)) for w in sensor.decode(text.encode(), spec)],
        }
        for name, text, spec in cases
    ]


def build() -> dict[str, Any]:
    """The fixture as the current server code makes it."""
    return {
        "description": "Inputs and the server's preprocessing of them (audio_codec.decode_clips, "
        "sensor.decode); sensor windows are flattened time-major [window * channels]. "
        "Generated by tests/unit/clients/test_dart_task_fixtures.py; do not edit by hand.",
        "audio": _audio_cases(),
        "sensor": _sensor_cases(),
    }


@pytest.fixture(scope="module")
def stored() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


def test_the_fixture_is_what_the_server_code_makes_now(stored: dict[str, Any]) -> None:
    fresh = build()
    for kind, key in (("audio", "clips"), ("sensor", "windows")):
        assert [c["name"] for c in stored[kind]] == [c["name"] for c in fresh[kind]]
        for old, new in zip(stored[kind], fresh[kind], strict=True):
            assert old["spec"] == new["spec"], old["name"]
            assert len(old[key]) == len(new[key]), old["name"]
            for a, b in zip(old[key], new[key], strict=True):
                np.testing.assert_allclose(a, b, atol=2e-7, err_msg=old["name"])


def test_the_stored_inputs_decode_to_the_stored_outputs(stored: dict[str, Any]) -> None:
    """The Dart tests read inputs and outputs from the file: the pair must agree on its own."""
    for case in stored["audio"]:
        s = case["spec"]
        spec = AudioSpec(s["sample_rate_hz"], s["clip_ms"], LongClips(s["long_clips"]))
        clips = audio_codec.decode_clips(base64.b64decode(case["wav_base64"]), spec)
        assert clips.shape == (len(case["clips"]), spec.clip_samples)
        np.testing.assert_allclose(clips, case["clips"], atol=2e-7, err_msg=case["name"])
    for case in stored["sensor"]:
        s = case["spec"]
        sspec = SensorSpec(
            tuple(s["channels"]),
            s["rate_hz"],
            s["window"],
            s["stride"],
            SensorFraming(s["framing"]),
        )
        windows = sensor.decode(case["text"].encode(), sspec)
        flat = windows.reshape(len(windows), -1)
        np.testing.assert_allclose(flat, case["windows"], atol=2e-7, err_msg=case["name"])


def test_the_cases_cover_what_the_dart_port_must_get_right(stored: dict[str, Any]) -> None:
    """Downsampling from stereo, float input, 24/8-bit PCM, upsampling, split clips; sensor
    timestamps with reordered channels, plain windows with a stride, JSON padding."""
    audio = {c["name"]: c for c in stored["audio"]}
    assert len(audio["mono_48k_float32_split"]["clips"]) > 1
    assert audio["stereo_44k1_pcm16_padded"]["clips"][0][-1] == 0.0  # zero padding at the end
    windows = {c["name"]: c["windows"] for c in stored["sensor"]}
    assert len(windows["csv_plain_windows"]) > 1 and len(windows["json_100hz_padded"]) == 1
    padded = np.asarray(windows["json_100hz_padded"][0]).reshape(30, 3)
    assert (padded[-1] == padded[-2]).all()  # padding repeats the last reading


if __name__ == "__main__":
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(build(), indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {FIXTURE.relative_to(Path.cwd())}", file=sys.stderr)
