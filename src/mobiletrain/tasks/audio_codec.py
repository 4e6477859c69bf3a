"""WAV decoding for audio classification: parse, validate, mono, resample, cut to clip length.

Pure numpy + stdlib (no TensorFlow, no scipy), so the API process validates uploads with it and
the worker decodes training samples with the very same code. The stdlib ``wave`` module is not
used: in Python 3.11 it rejects 32-bit float and ``WAVE_FORMAT_EXTENSIBLE`` files, which phones
and DAWs write all the time.

Accepted: RIFF/WAVE with PCM 8-bit (unsigned), 16/24/32-bit (signed) integers or IEEE 32/64-bit
float samples, plain or ``WAVE_FORMAT_EXTENSIBLE``, any channel count up to the limit. Every
failure raises :class:`~mobiletrain.core.errors.MobiletrainError` with one of the audio codes:

* ``CORRUPT_AUDIO`` (110): not RIFF/WAVE, a chunk running past the end of the file (truncated
  upload), no ``fmt``/``data`` chunk, data not a whole number of frames, NaN/inf float samples,
  a header that contradicts itself (block align vs channels x sample width).
* ``UNSUPPORTED_AUDIO_FORMAT`` (111): compressed (ADPCM, mu-law, MP3 in WAV), odd widths,
  RF64, too many channels.
* ``AUDIO_TOO_LONG`` (112): longer than the limit, or than the clip with ``long_clips=reject``.
* ``AUDIO_TOO_SHORT`` (113): fewer samples than the minimum duration.
* ``UNSUPPORTED_SAMPLE_RATE`` (114): sample rate outside ``[min_rate_hz, max_rate_hz]``.

The model input is float32 mono PCM in ``[-1, 1]`` at the project's rate, exactly ``clip``
samples long; shorter clips are zero-padded at the END (the app pads the same way).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import AudioSpec, LongClips

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# The tail every KSDATAFORMAT_SUBTYPE_* GUID shares; its first two bytes are the format tag.
_SUBTYPE_TAIL = bytes.fromhex("000000001000800000aa00389b71")

# Overshoot (in seconds) cut silently instead of rejected: resampling and recorders that stop a
# few milliseconds late must not make an honest 1 s clip "too long".
LENGTH_TOLERANCE_S = 0.01


@dataclass(frozen=True)
class AudioLimits:
    """Server-side bounds on an uploaded WAV (checked from the header, before decoding)."""

    max_duration_s: float = 30.0
    min_duration_s: float = 0.05
    max_channels: int = 8
    min_rate_hz: int = 4000
    max_rate_hz: int = 192000


DEFAULT_LIMITS = AudioLimits()
DEFAULT_SPEC = AudioSpec()


@dataclass(frozen=True)
class WavInfo:
    """What the header of a valid WAV file says (data bytes are ``data[offset:offset+size]``)."""

    sample_rate: int
    channels: int
    bits_per_sample: int
    is_float: bool
    frames: int
    data_offset: int
    data_size: int

    @property
    def duration_s(self) -> float:
        """Length of the recording in seconds."""
        return self.frames / self.sample_rate

    @property
    def encoding(self) -> str:
        """Short name such as ``pcm16`` or ``float32`` (for sample listings and manifests)."""
        return f"{'float' if self.is_float else 'pcm'}{self.bits_per_sample}"


def _corrupt(message: str) -> MobiletrainError:
    return MobiletrainError(ErrorCode.CORRUPT_AUDIO, message)


def _unsupported(message: str) -> MobiletrainError:
    return MobiletrainError(ErrorCode.UNSUPPORTED_AUDIO_FORMAT, message)


def _chunks(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Map chunk id -> (offset, size) of the first chunk with that id, checking every length."""
    if len(data) < 12:
        raise _corrupt(f"a WAV file has at least 12 header bytes; got {len(data)}")
    riff, riff_size, wave_id = struct.unpack_from("<4sI4s", data, 0)
    if riff == b"RF64":
        raise _unsupported("RF64 (WAV over 4 GiB) is not supported")
    if riff != b"RIFF" or wave_id != b"WAVE":
        raise _corrupt("not a RIFF/WAVE file (missing 'RIFF'...'WAVE' header)")
    # The RIFF size counts everything after its own field; a missing final pad byte is tolerated.
    end = 8 + riff_size
    if end > len(data) + 1:
        raise _corrupt(
            f"the RIFF header declares {end} bytes but the file has {len(data)} (truncated?)"
        )
    if end < len(data):
        raise _corrupt(f"{len(data) - end} bytes follow the end of the RIFF chunk")
    end = min(end, len(data))
    found: dict[bytes, tuple[int, int]] = {}
    pos = 12
    while pos + 8 <= end:
        cid, size = struct.unpack_from("<4sI", data, pos)
        body = pos + 8
        if body + size > end:
            raise _corrupt(
                f"chunk {cid!r} declares {size} bytes but only {end - body} remain (truncated?)"
            )
        found.setdefault(cid, (body, size))
        pos = body + size + (size & 1)  # chunks are word-aligned
    if end - pos not in (0, 1) and pos < end:
        raise _corrupt(f"{end - pos} stray bytes after the last chunk")
    return found


def parse_wav(data: bytes, limits: AudioLimits = DEFAULT_LIMITS) -> WavInfo:
    """Validate the header and lengths of a WAV file and return what it holds.

    Cheap (no sample is decoded), so uploads are checked before they are stored.
    """
    chunks = _chunks(data)
    if b"fmt " not in chunks:
        raise _corrupt("no 'fmt ' chunk")
    if b"data" not in chunks:
        raise _corrupt("no 'data' chunk")
    fmt_at, fmt_size = chunks[b"fmt "]
    if fmt_size < 16:
        raise _corrupt(f"the 'fmt ' chunk has {fmt_size} bytes; at least 16 are needed")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", data, fmt_at)
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if fmt_size < 40:
            raise _corrupt("WAVE_FORMAT_EXTENSIBLE needs a 40-byte 'fmt ' chunk")
        valid_bits, _mask, subformat = struct.unpack_from("<HI16s", data, fmt_at + 18)
        if subformat[2:] != _SUBTYPE_TAIL:
            raise _unsupported("WAVE_FORMAT_EXTENSIBLE with a non-standard subformat GUID")
        tag = struct.unpack_from("<H", subformat)[0]
        # Valid bits below the container width (e.g. 20 in 24) are still full-scale samples.
        if valid_bits > bits:
            raise _corrupt(f"{valid_bits} valid bits in a {bits}-bit container")
    if tag == WAVE_FORMAT_PCM:
        is_float = False
        if bits not in (8, 16, 24, 32):
            raise _unsupported(f"{bits}-bit integer PCM (8, 16, 24 or 32 bits are supported)")
    elif tag == WAVE_FORMAT_IEEE_FLOAT:
        is_float = True
        if bits not in (32, 64):
            raise _unsupported(f"{bits}-bit float samples (32 or 64 bits are supported)")
    else:
        raise _unsupported(f"WAV format tag 0x{tag:04x} (compressed audio is not decoded)")
    if channels == 0:
        raise _corrupt("the header says 0 channels")
    if channels > limits.max_channels:
        raise _unsupported(f"{channels} channels; at most {limits.max_channels} are supported")
    if block_align != channels * bits // 8:
        raise _corrupt(
            f"block align {block_align} != {channels} channels x {bits // 8} bytes per sample"
        )
    if not limits.min_rate_hz <= rate <= limits.max_rate_hz:
        raise MobiletrainError(
            ErrorCode.UNSUPPORTED_SAMPLE_RATE,
            f"sample rate {rate} Hz is outside {limits.min_rate_hz}..{limits.max_rate_hz} Hz",
        )
    data_at, data_size = chunks[b"data"]
    if data_size % block_align:
        raise _corrupt(
            f"{data_size} data bytes are not a whole number of {block_align}-byte frames"
        )
    info = WavInfo(rate, channels, bits, is_float, data_size // block_align, data_at, data_size)
    if info.duration_s > limits.max_duration_s:
        raise MobiletrainError(
            ErrorCode.AUDIO_TOO_LONG,
            f"{info.duration_s:.2f} s of audio; at most {limits.max_duration_s:g} s per file",
        )
    if info.duration_s < limits.min_duration_s:
        raise MobiletrainError(
            ErrorCode.AUDIO_TOO_SHORT,
            f"{info.duration_s * 1000:.0f} ms of audio; at least "
            f"{limits.min_duration_s * 1000:.0f} ms are needed",
        )
    return info


def read_wav(data: bytes, limits: AudioLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, WavInfo]:
    """Decode a WAV file to float32 ``(frames, channels)`` in ``[-1, 1]`` plus its header."""
    info = parse_wav(data, limits)
    raw = np.frombuffer(data, dtype=np.uint8, count=info.data_size, offset=info.data_offset)
    width = info.bits_per_sample // 8
    if info.is_float:
        values = raw.view("<f4" if width == 4 else "<f8").astype(np.float32)
        if not np.isfinite(values).all():
            raise _corrupt("float samples include NaN or infinity")
        values = np.clip(values, -1.0, 1.0)  # float WAVs may overshoot; integer ones cannot
    elif width == 1:
        values = (raw.astype(np.float32) - 128.0) / 128.0  # 8-bit PCM is unsigned
    elif width == 3:
        triples = raw.reshape(-1, 3).astype(np.int32)
        ints = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)  # sign-extend
        values = ints.astype(np.float32) / float(1 << 23)
    else:
        dtype = "<i2" if width == 2 else "<i4"
        values = (raw.view(dtype).astype(np.float64) / float(1 << (8 * width - 1))).astype(
            np.float32
        )
    return values.reshape(info.frames, info.channels), info


def to_mono(frames: np.ndarray) -> np.ndarray:
    """Average the channels of ``(frames, channels)`` audio into one float32 channel."""
    if frames.ndim == 1:
        return frames.astype(np.float32, copy=False)
    return frames.mean(axis=1, dtype=np.float64).astype(np.float32)


def _kaiser_sinc(offsets: np.ndarray, cutoff: float, half_width: float, beta: float) -> np.ndarray:
    """Low-pass windowed-sinc taps at ``offsets`` input samples from the output instant."""
    window = np.zeros_like(offsets)
    inside = np.abs(offsets) < half_width
    window[inside] = np.i0(beta * np.sqrt(1.0 - (offsets[inside] / half_width) ** 2)) / np.i0(beta)
    return cutoff * np.sinc(cutoff * offsets) * window


def resample(
    signal: np.ndarray,
    src_rate: int,
    dst_rate: int,
    zero_crossings: int = 16,
    rolloff: float = 0.94,
    beta: float = 8.6,
) -> np.ndarray:
    """Band-limited resampling of mono audio by the exact ratio ``dst_rate / src_rate``.

    Kaiser-windowed sinc interpolation evaluated per output sample (a polyphase filter: the
    ``L = dst/gcd`` distinct phases are computed once when there are fewer phases than outputs).
    The low-pass sits at ``rolloff`` x the lower Nyquist frequency, so content above the new
    Nyquist is removed (about 80 dB stop band with ``beta=8.6``) instead of aliasing. Every phase
    is normalised to unit DC gain. Output length is ``ceil(len * dst / src)``, as
    ``scipy.signal.resample_poly`` gives.
    """
    x = np.asarray(signal, dtype=np.float64)
    if src_rate == dst_rate or x.size == 0:
        return x.astype(np.float32)
    g = math.gcd(src_rate, dst_rate)
    up, down = dst_rate // g, src_rate // g
    cutoff = rolloff * min(1.0, up / down)  # in cycles per input sample x 2
    half_width = zero_crossings / cutoff
    reach = math.ceil(half_width)
    taps = np.arange(-reach + 1, reach + 1)  # input offsets around floor(t)
    n_out = -(-x.size * up // down)
    padded = np.concatenate([np.zeros(reach), x, np.zeros(reach + 1)])
    out = np.empty(n_out, dtype=np.float64)
    table: np.ndarray | None = None
    if up <= n_out:
        phases = np.arange(up)[:, None] / up
        table = _kaiser_sinc(phases - taps[None, :], cutoff, half_width, beta)
        table /= table.sum(axis=1, keepdims=True)
    step = max(1, (1 << 20) // taps.size)  # bound the gathered window matrix to ~8 MB
    for start in range(0, n_out, step):
        n = np.arange(start, min(n_out, start + step), dtype=np.int64)
        base = n * down // up
        phase = n * down % up
        if table is not None:
            weights = table[phase]
        else:
            weights = _kaiser_sinc((phase / up)[:, None] - taps[None, :], cutoff, half_width, beta)
            weights /= weights.sum(axis=1, keepdims=True)
        window = padded[(base + reach)[:, None] + taps[None, :]]
        out[start : start + n.size] = np.einsum("ij,ij->i", window, weights)
    return out.astype(np.float32)


def fit_clips(
    signal: np.ndarray, clip_samples: int, long_clips: LongClips = LongClips.REJECT, rate: int = 0
) -> np.ndarray:
    """Cut or pad mono audio into ``(n, clip_samples)`` clips.

    Shorter audio is zero-padded at the end. Longer audio (beyond ``LENGTH_TOLERANCE_S``, which is
    trimmed) raises ``AUDIO_TOO_LONG`` with ``REJECT``; with ``SPLIT`` it becomes consecutive
    clips, the last one zero-padded. ``rate`` is only used to word the error message.
    """
    tolerance = round(LENGTH_TOLERANCE_S * rate) if rate else 0
    n = signal.size
    if n > clip_samples + tolerance and long_clips is LongClips.REJECT:
        seconds = (
            f" ({n / rate:.2f} s; the clip length is {clip_samples / rate:.2f} s)" if rate else ""
        )
        raise MobiletrainError(
            ErrorCode.AUDIO_TOO_LONG,
            f"{n} samples after resampling, more than the project's clip of {clip_samples}"
            f"{seconds}; trim it or create the project with long clips split",
        )
    if n <= clip_samples + tolerance:
        count = 1
    else:
        count = -(-n // clip_samples)
        # A tail shorter than the tolerance is recorder overshoot, not another clip.
        if n - (count - 1) * clip_samples <= tolerance:
            count -= 1
    out = np.zeros((count, clip_samples), dtype=np.float32)
    flat = out.reshape(-1)
    take = min(n, flat.size)
    flat[:take] = signal[:take]
    return out


def decode_clips(
    data: bytes, spec: AudioSpec = DEFAULT_SPEC, limits: AudioLimits = DEFAULT_LIMITS
) -> np.ndarray:
    """WAV bytes -> float32 ``(n, clip_samples)`` model inputs (``n > 1`` only when split)."""
    frames, info = read_wav(data, limits)
    mono = resample(to_mono(frames), info.sample_rate, spec.sample_rate_hz)
    # Band-limiting full-scale noise overshoots (Gibbs); the model's contract is -1..1.
    np.clip(mono, -1.0, 1.0, out=mono)
    return fit_clips(mono, spec.clip_samples, spec.long_clips, spec.sample_rate_hz)


def validate_wav(
    data: bytes, spec: AudioSpec = DEFAULT_SPEC, limits: AudioLimits = DEFAULT_LIMITS
) -> WavInfo:
    """Check an upload without decoding its samples: header, lengths, limits, clip policy."""
    info = parse_wav(data, limits)
    if spec.long_clips is LongClips.REJECT:
        resampled = -(-info.frames * spec.sample_rate_hz // info.sample_rate)
        tolerance = round(LENGTH_TOLERANCE_S * spec.sample_rate_hz)
        if resampled > spec.clip_samples + tolerance:
            raise MobiletrainError(
                ErrorCode.AUDIO_TOO_LONG,
                f"{info.duration_s:.2f} s of audio, longer than the project's clip of "
                f"{spec.clip_ms / 1000:.2f} s; trim it or create the project with long clips split",
            )
    return info


def encode_wav(
    samples: np.ndarray, sample_rate: int, bits: int = 16, is_float: bool = False
) -> bytes:
    """Write float audio (``(frames,)`` or ``(frames, channels)`` in ``[-1, 1]``) as a WAV file.

    Used by tests, the demo and the Dart golden fixtures; 8/16/24/32-bit PCM or 32-bit float.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    channels = x.shape[1]
    x = np.clip(x, -1.0, 1.0)
    if is_float:
        if bits != 32:
            raise ValueError("float WAVs are written as 32-bit")
        payload = x.astype("<f4").tobytes()
        tag = WAVE_FORMAT_IEEE_FLOAT
    elif bits == 8:
        payload = np.clip(np.round(x * 128.0 + 128.0), 0, 255).astype(np.uint8).tobytes()
        tag = WAVE_FORMAT_PCM
    elif bits in (16, 24, 32):
        full = float(1 << (bits - 1))
        ints = np.clip(np.round(x * full), -full, full - 1).astype(np.int64)
        if bits == 24:
            b = ints.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
            payload = b.tobytes()
        else:
            payload = ints.astype("<i2" if bits == 16 else "<i4").tobytes()
        tag = WAVE_FORMAT_PCM
    else:
        raise ValueError(f"cannot write {bits}-bit PCM")
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, sample_rate, sample_rate * block, block, bits)
    pad = b"\x00" if len(payload) & 1 else b""
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    body += b"data" + struct.pack("<I", len(payload)) + payload + pad
    return b"RIFF" + struct.pack("<I", len(body)) + body
