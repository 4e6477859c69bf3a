"""Size and write/restore time of one epoch checkpoint (docs/reliability.md, "Checkpoints").

Usage: ``python scripts/checkpoint_cost.py``. Builds each model with random initialisation
(nothing is downloaded), writes five checkpoints of its state and restores the last one.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import keras

from mobiletrain.compute import checkpoints
from mobiletrain.compute.checkpoints import Checkpoint
from mobiletrain.compute.keras.builders import build_model
from mobiletrain.compute.keras.checkpoint import apply_arrays, state_arrays
from mobiletrain.core.types import Architecture, Hyperparameters, InputSpec

_RANDOM_INIT = (
    {"allow_random_init": True}
    if "allow_random_init" in {f.name for f in dataclasses.fields(Hyperparameters)}
    else {}
)


def main() -> None:
    """Print one line per model."""
    for arch, size in ((Architecture.SMALL_CNN, 32), (Architecture.MOBILENET_V3_SMALL, 96)):
        # MobileNet trains from random initialisation here: nothing is downloaded.
        hp = Hyperparameters(architecture=arch, **_RANDOM_INIT)
        model = build_model(arch, InputSpec(size, size), 10, hp)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        with tempfile.TemporaryDirectory() as folder:
            times = []
            for epoch in range(1, 6):
                start = time.perf_counter()
                state = Checkpoint(epoch, {"loss": [0.1] * epoch}, False, state_arrays(model))
                path = checkpoints.write(Path(folder), state)
                times.append(time.perf_counter() - start)
            start = time.perf_counter()
            apply_arrays(model, checkpoints.read(path).arrays)
            restore = time.perf_counter() - start
            print(
                f"{arch.value} {size}x{size}: {path.stat().st_size / 1e6:.2f} MB per checkpoint, "
                f"write {statistics.median(times) * 1000:.0f} ms (median of 5), "
                f"read and restore {restore * 1000:.0f} ms"
            )


if __name__ == "__main__":
    main()
