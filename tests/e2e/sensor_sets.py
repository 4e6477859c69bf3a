"""BasicMotions, a real labelled sensor set, read from the files the sktime wheel ships.

Four students wore a smart watch while standing, walking, running and playing badminton;
each recording is 10 s of 3-D accelerometer and 3-D gyroscope at 10 Hz (100 readings).
The archive's own split: 40 training and 40 test recordings. sktime is never imported (only
located), so its dependencies play no part.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
RATE_HZ = 10.0


@dataclass(frozen=True)
class Recording:
    label: str
    values: np.ndarray  # float64 (100, 6), time-major

    def csv(self) -> bytes:
        """The recording as an app would upload it: CSV with a header of channel names."""
        rows = [",".join(CHANNELS)] + [",".join(f"{v:.6f}" for v in r) for r in self.values]
        return ("\n".join(rows) + "\n").encode()


def _ts_file(split: str) -> Path:
    spec = importlib.util.find_spec("sktime")
    if spec is None or spec.origin is None:
        raise RuntimeError("sktime (a locked dev dependency) is not installed")
    return (
        Path(spec.origin).parent / "datasets" / "data" / "BasicMotions" / f"BasicMotions_{split}.ts"
    )


def basic_motions(split: str) -> list[Recording]:
    """``split`` "TRAIN" or "TEST": the archive's recordings in file order."""
    out: list[Recording] = []
    in_data = False
    for line in _ts_file(split).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        *dims, label = line.split(":")
        values = np.array([[float(v) for v in d.split(",")] for d in dims]).T
        assert values.shape == (100, len(CHANNELS)), values.shape
        out.append(Recording(label, values))
    return out
