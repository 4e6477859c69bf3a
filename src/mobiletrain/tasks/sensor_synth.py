"""Synthetic motion recordings: a wrist accelerometer while idle, walking, running or shaking.

Used by ``mobiletrain demo --task sensor`` and the tests. Each *wearer* holds the phone at
their own angle (gravity falls on other axes), walks at their own cadence and moves with
their own strength, so a model must generalise across wearers; held-out wearers make the
test split. NumPy only; recordings come out as CSV (with or without a timestamp column) or
JSON, the two formats uploads take.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobiletrain.core.types import SensorFraming, SensorSpec

LABELS = ("idle", "walk", "run", "shake")
CHANNELS = ("ax", "ay", "az")
RATE_HZ = 50.0
GRAVITY = 9.81
DEMO_SPEC = SensorSpec(
    channels=CHANNELS, rate_hz=RATE_HZ, window=100, stride=50, framing=SensorFraming.WINDOWS
)
"""2 s windows every 1 s at 50 Hz: the spec the demo project is created with."""


@dataclass(frozen=True)
class Wearer:
    """How one person carries the phone and moves."""

    rotation: np.ndarray  # 3x3: device axes relative to the body
    cadence: float  # step-rate factor, about 0.85..1.15
    strength: float  # amplitude factor, about 0.7..1.3


def _rotation(rng: np.random.Generator) -> np.ndarray:
    # A random tilt of up to ~35 degrees about a random horizontal axis, then any yaw.
    axis = np.array([*rng.normal(size=2), 0.0])
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(0, 0.6)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    tilt = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    yaw = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(yaw), np.sin(yaw)
    return tilt @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def wearers(count: int, seed: int) -> list[Wearer]:
    """``count`` different wearers (the same ones for the same seed)."""
    rng = np.random.default_rng(seed)
    return [
        Wearer(_rotation(rng), float(rng.uniform(0.85, 1.15)), float(rng.uniform(0.7, 1.3)))
        for _ in range(count)
    ]


def recording(
    label: str, wearer: Wearer, seconds: float, rng: np.random.Generator, rate_hz: float = RATE_HZ
) -> np.ndarray:
    """Accelerometer readings float64 ``(seconds * rate_hz, 3)`` in m/s², device axes."""
    n = round(seconds * rate_hz)
    t = np.arange(n) / rate_hz
    phase = rng.uniform(0, 2 * np.pi)
    body = np.zeros((n, 3))  # forward, lateral, vertical
    s = wearer.strength
    if label == "idle":
        body += rng.normal(0, 0.05, (n, 3)) + 0.1 * np.sin(2 * np.pi * 0.2 * t + phase)[:, None]
    elif label == "walk":
        f = 1.8 * wearer.cadence * rng.uniform(0.95, 1.05)
        w = 2 * np.pi * f * t + phase
        body[:, 2] = s * (2.5 * np.sin(w) + 0.8 * np.sin(2 * w + 0.5))
        body[:, 0] = s * 1.2 * np.sin(w + np.pi / 2)
        body[:, 1] = s * 0.6 * np.sin(w / 2)
        body += rng.normal(0, 0.3, (n, 3))
    elif label == "run":
        f = 2.8 * wearer.cadence * rng.uniform(0.95, 1.05)
        w = 2 * np.pi * f * t + phase
        body[:, 2] = s * (6.0 * np.sin(w) + 2.5 * np.sin(2 * w + 0.3))
        body[:, 0] = s * 3.0 * np.sin(w + np.pi / 2)
        body[:, 1] = s * 1.5 * np.sin(w / 2)
        body += rng.normal(0, 0.6, (n, 3))
    elif label == "shake":
        f = rng.uniform(5.0, 8.0)
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        envelope = 0.6 + 0.4 * np.abs(np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t))
        body += (s * 8.0 * envelope * np.sin(2 * np.pi * f * t + phase))[:, None] * direction
        body += rng.normal(0, 0.5, (n, 3))
    else:
        raise ValueError(f"unknown motion {label!r}; known: {', '.join(LABELS)}")
    body[:, 2] += GRAVITY
    return body @ wearer.rotation  # into the device's axes


def to_csv(values: np.ndarray, rate_hz: float = RATE_HZ, timestamps: bool = False) -> bytes:
    """CSV with a header of channel names (and a ``timestamp`` column in seconds)."""
    header = ["timestamp", *CHANNELS] if timestamps else list(CHANNELS)
    lines = [",".join(header)]
    for i, row in enumerate(values):
        cells = [f"{v:.4f}" for v in row]
        if timestamps:
            cells.insert(0, f"{i / rate_hz:.4f}")
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()


def to_json(values: np.ndarray, rate_hz: float = RATE_HZ) -> bytes:
    """``{"rate_hz", "channels", "values"}`` JSON."""
    rows = [[round(float(v), 4) for v in row] for row in values]
    return json.dumps({"rate_hz": rate_hz, "channels": list(CHANNELS), "values": rows}).encode()


@dataclass(frozen=True)
class SyntheticSample:
    """One recording as uploaded."""

    name: str  # file name, e.g. "w3-walk-07.csv"
    label: str
    wearer: int
    data: bytes


def samples(
    wearer_ids: list[int], per_label: int, seed: int, total_wearers: int = 12
) -> list[SyntheticSample]:
    """``per_label`` recordings of 4-6 s per motion for each wearer in ``wearer_ids``
    (indices into ``wearers(total_wearers, seed)``), in CSV, timestamped CSV and JSON."""
    people = wearers(total_wearers, seed)
    out: list[SyntheticSample] = []
    for w in wearer_ids:
        rng = np.random.default_rng([seed, w])
        for label in LABELS:
            for i in range(per_label):
                values = recording(label, people[w], rng.uniform(4.0, 6.0), rng)
                kind = i % 3
                if kind == 2:
                    data, ext = to_json(values), "json"
                else:
                    data, ext = to_csv(values, timestamps=kind == 1), "csv"
                out.append(SyntheticSample(f"w{w}-{label}-{i:02d}.{ext}", label, w, data))
    return out


def write_demo_dataset(
    directory: Path, seed: int = 0, wearer_ids: list[int] | None = None, per_label: int = 4
) -> SensorSpec:
    """Write ``directory/<label>/<file>`` for ``mobiletrain upload`` and return the spec
    to create the project with (:data:`DEMO_SPEC`)."""
    for sample in samples(
        wearer_ids if wearer_ids is not None else list(range(8)), per_label, seed
    ):
        folder = directory / sample.label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / sample.name).write_bytes(sample.data)
    return DEMO_SPEC
