"""The audio kind's WAV codec and validation (pure: no TensorFlow, no server).

Property tests (hypothesis) cover the decoder against the stdlib ``wave`` writer, every
encoding round trip, and that no byte string makes the parser fail with anything but a
stable audio/sample error code.
"""

from __future__ import annotations

import io
import struct
import wave

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import AudioSpec, InputSpec, LongClips, TaskType
from mobiletrain.core.validation import Limits
from mobiletrain.tasks import TaskKind, kind, sample_extensions, validate_sample
from mobiletrain.tasks.audio import KIND
from mobiletrain.tasks.audio_codec import (
    WAVE_FORMAT_EXTENSIBLE,
    AudioLimits,
    decode_clips,
    encode_wav,
    fit_clips,
    parse_wav,
    read_wav,
    resample,
    to_mono,
)

PROJECT = InputSpec(task_spec=AudioSpec())
ANY_LENGTH = AudioLimits(min_duration_s=0.0)
AUDIO_CODES = {
    ErrorCode.CORRUPT_AUDIO,
    ErrorCode.UNSUPPORTED_AUDIO_FORMAT,
    ErrorCode.AUDIO_TOO_LONG,
    ErrorCode.AUDIO_TOO_SHORT,
    ErrorCode.UNSUPPORTED_SAMPLE_RATE,
    ErrorCode.EMPTY_SAMPLE,
    ErrorCode.SAMPLE_TOO_LARGE,
}


def _code(data: bytes, spec: InputSpec = PROJECT) -> ErrorCode:
    with pytest.raises(MobiletrainError) as info:
        validate_sample(spec, data, Limits())
    return info.value.code


def _tone(seconds: float, rate: int, hz: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _extensible(samples: np.ndarray, rate: int, bits: int, is_float: bool) -> bytes:
    """A WAVE_FORMAT_EXTENSIBLE file around the payload ``encode_wav`` writes."""
    plain = encode_wav(samples, rate, bits, is_float)
    info = parse_wav(plain, ANY_LENGTH)
    payload = plain[info.data_offset : info.data_offset + info.data_size]
    tag = 3 if is_float else 1
    guid = struct.pack("<H", tag) + bytes.fromhex("000000001000800000aa00389b71")
    block = info.channels * bits // 8
    fmt = struct.pack(
        "<HHIIHHHHI16s", WAVE_FORMAT_EXTENSIBLE, info.channels, rate, rate * block, block,
        bits, 22, bits, 0x3 if info.channels == 2 else 0x4, guid,
    )  # fmt: skip
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += (
        b"data" + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_the_kind_is_registered() -> None:
    assert kind(TaskType.AUDIO_CLASSIFICATION) is KIND
    assert set(sample_extensions(TaskType.AUDIO_CLASSIFICATION)) == {".wav"}
    assert KIND.check_spec(InputSpec()).task_spec == AudioSpec()
    missing = [name for name in TaskKind.__annotations__ if not hasattr(KIND, name)]
    assert not missing, f"AudioClassification lacks TaskKind attributes {missing}"
    assert KIND.client_resizes is False


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
@pytest.mark.parametrize("channels", [1, 2, 5])
def test_integer_pcm_round_trips(bits: int, channels: int) -> None:
    rng = np.random.default_rng(bits * channels)
    x = rng.uniform(-0.99, 0.99, (300, channels)).astype(np.float32)
    frames, info = read_wav(encode_wav(x, 16000, bits), ANY_LENGTH)
    assert (info.bits_per_sample, info.channels, info.frames) == (bits, channels, 300)
    np.testing.assert_allclose(frames, x, atol=1.5 / 2 ** (bits - 1))


@pytest.mark.parametrize(("bits", "is_float"), [(16, False), (24, False), (32, False), (32, True)])
def test_wave_format_extensible_decodes_like_the_plain_header(bits: int, is_float: bool) -> None:
    x = np.random.default_rng(0).uniform(-1, 1, (200, 2)).astype(np.float32)
    plain, _ = read_wav(encode_wav(x, 22050, bits, is_float), ANY_LENGTH)
    ext, info = read_wav(_extensible(x, 22050, bits, is_float), ANY_LENGTH)
    assert info.is_float is is_float and info.sample_rate == 22050
    np.testing.assert_array_equal(ext, plain)


def test_float_wav_is_exact_and_clipped() -> None:
    x = np.array([0.0, 0.25, -0.5, 1.5, -3.0], dtype=np.float32)
    frames, info = read_wav(encode_wav(np.clip(x, -1, 1), 8000, 32, is_float=True), ANY_LENGTH)
    assert info.encoding == "float32"
    np.testing.assert_array_equal(frames[:, 0], [0.0, 0.25, -0.5, 1.0, -1.0])


def test_stdlib_wave_files_decode_the_same() -> None:
    ints = (np.arange(-16000, 16000, 8) * 2).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(11025)
        w.writeframes(ints.tobytes())
    frames, info = read_wav(buf.getvalue())
    assert info.channels == 2 and info.sample_rate == 11025
    np.testing.assert_array_equal(frames.reshape(-1), ints.astype(np.float32) / 32768)
    assert info.frames == ints.size // 2


def test_stereo_is_averaged_to_mono_and_resampled_to_the_project_rate() -> None:
    left, right = _tone(0.5, 44100, amp=0.8), np.zeros(22050, np.float32)
    data = encode_wav(np.stack([left, right], axis=1), 44100, 16)
    clips = decode_clips(data, AudioSpec())
    assert clips.shape == (1, 16000) and clips.dtype == np.float32
    # Half a second of tone at half amplitude, then zero padding at the end.
    assert 0.39 < np.abs(clips[0, 1000:7000]).max() < 0.41
    assert not clips[0, 8001:].any()


@pytest.mark.parametrize(("src", "dst"), [(44100, 16000), (48000, 16000), (8000, 16000)])
def test_resampling_keeps_a_tone_and_removes_what_would_alias(src: int, dst: int) -> None:
    y = resample(_tone(1.0, src, 440.0), src, dst)
    assert y.size == dst
    t = np.arange(dst) / dst
    np.testing.assert_allclose(y[100:-100], 0.5 * np.sin(2 * np.pi * 440 * t)[100:-100], atol=1e-3)
    if dst < src:  # a tone above the new Nyquist frequency must vanish, not fold down
        folded = resample(_tone(1.0, src, dst / 2 + 1500), src, dst)
        assert np.sqrt(np.mean(folded[100:-100] ** 2)) < 1e-3


def test_resampling_matches_scipy_polyphase_filtering() -> None:
    signal = pytest.importorskip("scipy.signal")
    x = np.random.default_rng(1).standard_normal(4410)
    ours = resample(x, 44100, 16000)
    ref = signal.resample_poly(x, 160, 441)
    assert ours.shape == ref.shape
    # Two different anti-alias filters: equal in band, so highly correlated.
    assert np.corrcoef(ours[50:-50], ref[50:-50])[0, 1] > 0.99


def test_short_clips_are_padded_and_long_ones_rejected_or_split() -> None:
    rate = 16000
    assert fit_clips(np.ones(100, np.float32), rate).shape == (1, rate)
    long = encode_wav(_tone(2.5, rate), rate)
    assert _code(long) is ErrorCode.AUDIO_TOO_LONG
    split = InputSpec(task_spec=AudioSpec(long_clips=LongClips.SPLIT))
    info = validate_sample(split, long, Limits())
    assert (info.media_type, info.width, info.height) == ("audio/wav", 40000, 1)
    clips = KIND.decode_examples(long, split)
    assert clips.shape == (3, rate)
    assert clips[2, : rate // 2].any() and not clips[2, rate // 2 :].any()
    # A recorder that stops 5 ms late still makes one clip.
    assert KIND.decode_examples(encode_wav(_tone(1.005, rate), rate), PROJECT).shape == (1, rate)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.EMPTY_SAMPLE),
        (b"RIFF\x00\x00", ErrorCode.CORRUPT_AUDIO),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, ErrorCode.CORRUPT_AUDIO),
        (b"RF64" + b"\xff" * 4 + b"WAVE" + b"\0" * 40, ErrorCode.UNSUPPORTED_AUDIO_FORMAT),
    ],
)
def test_not_a_wav(data: bytes, code: ErrorCode) -> None:
    assert _code(data) is code


def test_truncated_and_inconsistent_headers_are_corrupt() -> None:
    good = encode_wav(_tone(0.5, 16000), 16000)
    assert _code(good[:-100]) is ErrorCode.CORRUPT_AUDIO  # upload cut short
    assert _code(good + b"junk") is ErrorCode.CORRUPT_AUDIO  # bytes after the RIFF chunk
    # espeak-ng --stdout style streaming header: sizes are placeholders.
    streaming = good[:4] + struct.pack("<I", 0x7FFFF000) + good[8:]
    assert _code(streaming) is ErrorCode.CORRUPT_AUDIO
    odd = bytearray(good)
    odd[32:34] = struct.pack("<H", 3)  # block align 3 for mono 16-bit
    assert _code(bytes(odd)) is ErrorCode.CORRUPT_AUDIO
    nan = encode_wav(np.zeros(2000, np.float32), 16000, 32, is_float=True)
    nan = nan[:-4] + struct.pack("<f", float("nan"))
    with pytest.raises(MobiletrainError) as info:
        KIND.decode_examples(nan, PROJECT)
    assert info.value.code is ErrorCode.CORRUPT_AUDIO


def test_unsupported_encodings_rates_and_lengths() -> None:
    mulaw = bytearray(encode_wav(_tone(0.5, 8000), 8000, 16))
    mulaw[20:22] = struct.pack("<H", 7)
    assert _code(bytes(mulaw)) is ErrorCode.UNSUPPORTED_AUDIO_FORMAT
    assert _code(encode_wav(np.zeros((800, 9)), 16000)) is ErrorCode.UNSUPPORTED_AUDIO_FORMAT
    assert _code(encode_wav(_tone(0.5, 2000), 2000)) is ErrorCode.UNSUPPORTED_SAMPLE_RATE
    assert _code(encode_wav(np.zeros(100, np.float32), 16000)) is ErrorCode.AUDIO_TOO_SHORT
    split = InputSpec(task_spec=AudioSpec(long_clips=LongClips.SPLIT))
    assert _code(encode_wav(np.zeros(8000 * 31), 8000), split) is ErrorCode.AUDIO_TOO_LONG
    with pytest.raises(MobiletrainError) as info:
        parse_wav(encode_wav(_tone(0.5, 16000), 16000), AudioLimits(max_duration_s=0.25))
    assert info.value.code is ErrorCode.AUDIO_TOO_LONG


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bits=st.sampled_from([8, 16, 24, 32, -32]),
    channels=st.integers(1, 4),
    rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]),
    frames=st.integers(2400, 12000),  # >= 50 ms at 48 kHz
    seed=st.integers(0, 2**16),
)
def test_any_valid_wav_decodes_to_one_padded_clip(
    bits: int, channels: int, rate: int, frames: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (frames, channels)).astype(np.float32)
    data = encode_wav(x, rate, abs(bits), is_float=bits < 0)
    spec = InputSpec(task_spec=AudioSpec(long_clips=LongClips.SPLIT))
    info = validate_sample(spec, data, Limits())
    assert (info.width, info.height) == (frames, channels)
    clips = KIND.decode_examples(data, spec)
    mono = np.clip(resample(to_mono(read_wav(data)[0]), rate, 16000), -1, 1)
    n, count = mono.size, len(clips)
    assert clips.shape == (count, 16000) and count >= 1
    # As few clips as hold the audio (a tail of <= 10 ms overshoot is dropped), zero-padded.
    assert (count - 1) * 16000 < max(n, 1) and count * 16000 >= n - 160
    flat = clips.reshape(-1)
    kept = min(n, flat.size)
    np.testing.assert_array_equal(flat[:kept], mono[:kept])
    assert not flat[kept:].any()
    assert np.isfinite(clips).all() and np.abs(clips).max() <= 1.0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_fail_only_with_stable_codes(data: bytes) -> None:
    try:
        validate_sample(PROJECT, data, Limits())
    except MobiletrainError as exc:
        assert exc.code in AUDIO_CODES


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_headers_fail_only_with_stable_codes(data: st.DataObject) -> None:
    good = bytearray(encode_wav(_tone(0.2, 16000), 16000, 16))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, 47))
        good[pos] = data.draw(st.integers(0, 255))
    try:
        validate_sample(PROJECT, bytes(good), Limits())
        clips = KIND.decode_examples(bytes(good), PROJECT)
        assert clips.shape[1] == 16000 and np.isfinite(clips).all()
    except MobiletrainError as exc:
        assert exc.code in AUDIO_CODES
