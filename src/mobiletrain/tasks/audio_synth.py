"""Spoken-keyword data sets synthesised with ``espeak-ng``, for tests, benchmarks and the demo.

Each clip is one word said by one *voice* (dialect + voice variant + speed + pitch), trimmed of
silence, placed at a random offset in a clip of the project's length, scaled to a random
loudness and mixed with a little noise. Background-noise clips (pink, brown and white noise,
mains hum) are written under the reserved label ``_background_noise_``, which the audio task
uses for augmentation only (the speech-commands recipe), never as a class.

Voices are split into disjoint *training* and *held-out* sets: evaluation on held-out voices
measures whether a model learned the word rather than the speaker.

Needs the ``espeak-ng`` binary (Debian package ``espeak-ng``); :func:`espeak_available` says
whether it is installed. Pure Python + numpy otherwise; no TensorFlow.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mobiletrain.core.types import AudioSpec
from mobiletrain.tasks.audio import BACKGROUND_LABEL
from mobiletrain.tasks.audio_codec import decode_clips, encode_wav, read_wav, resample, to_mono

DEFAULT_WORDS: tuple[str, ...] = ("yes", "no", "up", "down")

# Dialects x voice variants of espeak-ng 1.5x (both ship in the Debian package).
TRAIN_DIALECTS = ("en-us", "en-gb", "en-gb-scotland", "en-029")
TRAIN_VARIANTS = ("m1", "m3", "m5", "f1", "f3", "f5", "croak", "klatt")
HELD_OUT_DIALECTS = ("en-gb-x-rp", "en-gb-x-gbclan")
HELD_OUT_VARIANTS = ("m2", "m4", "f2", "f4", "klatt2")


@dataclass(frozen=True)
class Voice:
    """One espeak-ng speaker setting."""

    dialect: str
    variant: str
    speed_wpm: int
    pitch: int

    @property
    def name(self) -> str:
        """Stable, file-name-safe id such as ``en-us+m3-s150-p50``."""
        return f"{self.dialect}+{self.variant}-s{self.speed_wpm}-p{self.pitch}"


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` binary is on ``PATH``."""
    return shutil.which("espeak-ng") is not None


def voices(dialects: Sequence[str], variants: Sequence[str], count: int, seed: int) -> list[Voice]:
    """``count`` distinct voices drawn from the dialect x variant grid, random speed and pitch."""
    rng = np.random.default_rng(seed)
    grid = [(d, v) for d in dialects for v in variants]
    order = rng.permutation(len(grid))
    chosen = [grid[i] for i in order[:count]]
    return [Voice(d, v, int(rng.integers(120, 200)), int(rng.integers(25, 75))) for d, v in chosen]


def speak(word: str, voice: Voice, rate_hz: int = 16000) -> np.ndarray:
    """Say ``word`` with ``voice``: float32 mono at ``rate_hz``, silence trimmed."""
    with tempfile.TemporaryDirectory(prefix="mobiletrain-espeak-") as tmp:
        path = Path(tmp) / "word.wav"
        # -w writes a finished header; --stdout leaves streaming placeholders in the sizes.
        subprocess.run(
            [
                "espeak-ng",
                "-v",
                f"{voice.dialect}+{voice.variant}",
                "-s",
                str(voice.speed_wpm),
                "-p",
                str(voice.pitch),
                "-w",
                str(path),
                word,
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        frames, info = read_wav(path.read_bytes())
    audio = resample(to_mono(frames), info.sample_rate, rate_hz)
    loud = np.flatnonzero(np.abs(audio) > 0.02 * float(np.abs(audio).max() or 1.0))
    return audio[loud[0] : loud[-1] + 1] if loud.size else audio


def noise(kind: str, samples: int, rng: np.random.Generator, rate_hz: int = 16000) -> np.ndarray:
    """Unit-peak noise of ``kind`` (``white``, ``pink``, ``brown`` or ``hum``)."""
    if kind == "hum":
        t = np.arange(samples) / rate_hz
        base = float(rng.choice([50.0, 60.0]))
        x = sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6.3)) / k for k in (1, 2, 3))
        x = np.asarray(x) + 0.05 * rng.standard_normal(samples)
    else:
        white = rng.standard_normal(samples)
        if kind == "white":
            x = white
        else:
            # Shape the spectrum: 1/f power (pink) or 1/f^2 (brown).
            spectrum = np.fft.rfft(white)
            f = np.maximum(np.fft.rfftfreq(samples), 1.0 / samples)
            spectrum /= np.sqrt(f) if kind == "pink" else f
            x = np.fft.irfft(spectrum, samples)
    x = x - x.mean()
    return (x / (np.abs(x).max() + 1e-12)).astype(np.float32)


def place(
    word: np.ndarray, clip_samples: int, rng: np.random.Generator, snr_db: float, gain: float
) -> np.ndarray:
    """Put ``word`` at a random offset in a clip, scale its peak to ``gain``, add white noise."""
    word = word[:clip_samples]
    clip = np.zeros(clip_samples, dtype=np.float32)
    start = int(rng.integers(0, clip_samples - word.size + 1))
    clip[start : start + word.size] = word / (np.abs(word).max() + 1e-12) * gain
    rms = float(np.sqrt(np.mean(clip[start : start + word.size] ** 2)) or 1e-3)
    clip += (rms / 10 ** (snr_db / 20) * rng.standard_normal(clip_samples)).astype(np.float32)
    return np.clip(clip, -1.0, 1.0)


@dataclass
class SpeechDataset:
    """Where :func:`make_speech_dataset` wrote its files (``DIR/<label>/*.wav`` layout)."""

    train_dir: Path
    held_out_dir: Path
    words: tuple[str, ...]
    train_voices: list[Voice]
    held_out_voices: list[Voice]
    counts: dict[str, int] = field(default_factory=dict)


def make_speech_dataset(
    out_dir: Path,
    words: Sequence[str] = DEFAULT_WORDS,
    train_voices: int = 24,
    held_out_voices: int = 8,
    takes: int = 2,
    background_clips: int = 6,
    rate_hz: int = 16000,
    clip_ms: int = 1000,
    seed: int = 0,
    workers: int = 4,
) -> SpeechDataset:
    """Synthesise a keyword data set into ``out_dir/train`` and ``out_dir/held_out``.

    Training gets ``train_voices x takes`` clips per word (each take another offset, loudness
    and noise level) plus ``background_clips`` noise clips under ``_background_noise_``;
    the held-out split gets one clip per word and held-out voice. Files are 16-bit PCM WAVs at
    ``rate_hz``. Deterministic for a given ``seed`` and espeak-ng version.
    """
    rng = np.random.default_rng(seed)
    clip_samples = rate_hz * clip_ms // 1000
    train_v = voices(TRAIN_DIALECTS, TRAIN_VARIANTS, train_voices, seed)
    held_v = voices(HELD_OUT_DIALECTS, HELD_OUT_VARIANTS, held_out_voices, seed + 1)
    jobs = [(w, v) for w in words for v in [*train_v, *held_v]]
    with ThreadPoolExecutor(max_workers=workers) as pool:  # espeak-ng runs as a subprocess
        spoken = dict(
            zip(jobs, pool.map(lambda job: speak(job[0], job[1], rate_hz), jobs), strict=True)
        )
    result = SpeechDataset(out_dir / "train", out_dir / "held_out", tuple(words), train_v, held_v)
    for split, split_voices, repeats in (
        (result.train_dir, train_v, takes),
        (result.held_out_dir, held_v, 1),
    ):
        for word in words:
            folder = split / word
            folder.mkdir(parents=True, exist_ok=True)
            for voice in split_voices:
                for take in range(repeats):
                    clip = place(
                        spoken[(word, voice)],
                        clip_samples,
                        rng,
                        snr_db=float(rng.uniform(15, 35)),
                        gain=float(rng.uniform(0.2, 0.9)),
                    )
                    name = f"{voice.name}-{take}.wav"
                    (folder / name).write_bytes(encode_wav(clip, rate_hz))
            result.counts[f"{split.name}/{word}"] = len(list(folder.glob("*.wav")))
    folder = result.train_dir / BACKGROUND_LABEL
    folder.mkdir(parents=True, exist_ok=True)
    kinds = ("pink", "brown", "white", "hum")
    for i in range(background_clips):
        kind = kinds[i % len(kinds)]
        # One clip long, so uploads pass the project's clip-length rule like any other sample.
        clip = float(rng.uniform(0.2, 0.6)) * noise(kind, clip_samples, rng, rate_hz)
        (folder / f"{kind}-{i}.wav").write_bytes(encode_wav(clip, rate_hz))
    result.counts[f"train/{BACKGROUND_LABEL}"] = background_clips
    return result


def held_out_examples(
    held_out_dir: Path, labels: Sequence[str], spec: AudioSpec | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``held_out_dir/<label>/*.wav`` as the server does: float32 clips and label indices."""
    audio = spec or AudioSpec()
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for index, label in enumerate(labels):
        for path in sorted((held_out_dir / label).glob("*.wav")):
            xs.append(decode_clips(path.read_bytes(), audio)[0])
            ys.append(index)
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def litert_accuracy(
    model: bytes, labels: Sequence[str], held_out_dir: Path, spec: AudioSpec | None = None
) -> float:
    """Accuracy of a downloaded ``.tflite`` on held-out clips, fed as an app feeds it.

    Runs the LiteRT interpreter (the runtime tflite_flutter wraps) one clip at a time on
    float32 PCM ``[1, clip_samples]``; the model's output order is ``labels``.
    """
    from ai_edge_litert.interpreter import Interpreter  # only demo/test callers pay for it

    x, y = held_out_examples(held_out_dir, labels, spec)
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    hits = 0
    for clip, label in zip(x, y, strict=True):
        interpreter.set_tensor(inp["index"], clip[None].astype(np.float32))
        interpreter.invoke()
        hits += int(np.argmax(interpreter.get_tensor(out["index"])[0]) == label)
    return hits / len(y)
