"""Object detection on held-out synthesised scenes: mobiletrain's trainer vs plain Keras.

mobiletrain: ``train_and_export`` on the training scenes (it holds 20 % of them out for
validation; box-aware flip/zoom/colour augmentation), then the float32, dynamic-int8 and int8
.tflite files run in LiteRT on held-out scenes (another seed), scored with COCO mAP.
Plain Keras: a script a developer would write with the same network, loss and targets
(``build_detector``, ``make_loss``, ``encode_targets``): ``model.fit`` on all training scenes
without augmentation for the same epochs, the same decoding + NMS on ``model.predict``.

Run: python bench/detection_keras.py [--train 160] [--held-out 40] [--epochs 20] [--side 128]
Prints one JSON line with both mAPs, both fit times and the load average.
The end-to-end test does the mobiletrain half through a real server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mobiletrain.compute.detection_eval import LiteRTDetector, coco_metrics  # noqa: E402
from mobiletrain.compute.keras.tasks import detection as det  # noqa: E402
from mobiletrain.compute.keras.train import train_and_export  # noqa: E402
from mobiletrain.compute.preprocess import decode_image, normalize  # noqa: E402
from mobiletrain.compute.protocol import TrainingRequest  # noqa: E402
from mobiletrain.core.annotations import Box, sample_label  # noqa: E402
from mobiletrain.core.types import (  # noqa: E402
    DetectionSpec,
    EventKind,
    Hyperparameters,
    InputSpec,
    ModelFormat,
)
from mobiletrain.tasks import detection_synth as synth  # noqa: E402


class _Quiet:
    def __init__(self) -> None:
        self.fit_seconds = 0.0

    def emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        if kind is EventKind.EPOCH:
            self.fit_seconds += float(data.get("seconds") or 0.0)

    def should_stop(self) -> bool:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=160)
    parser.add_argument("--held-out", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--side", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    spec = InputSpec(width=args.side, height=args.side, task_spec=DetectionSpec())
    labels = list(synth.LABELS)
    index = {name: i for i, name in enumerate(labels)}
    train = synth.scenes(args.train, seed=1)
    held = synth.scenes(args.held_out, seed=2, prefix="held")
    x_held = normalize(np.stack([decode_image(s.jpeg, spec) for s in held]), spec)

    def truth(scenes: list[synth.Scene]) -> list[np.ndarray]:
        return [
            det.boxes_array([Box(**b.to_dict()) for b in s.boxes], index)  # type: ignore[arg-type]
            for s in scenes
        ]

    held_truth = truth(held)
    hp = Hyperparameters(
        epochs=args.epochs,
        batch_size=16,
        learning_rate=4e-3,
        seed=args.seed,
        formats=[ModelFormat.FLOAT32, ModelFormat.DYNAMIC_INT8, ModelFormat.INT8],
    )
    # mobiletrain, as the worker calls it.
    boxes = [[Box(**b.to_dict()) for b in s.boxes] for s in train]  # type: ignore[arg-type]
    sample_labels = [sample_label(b) for b in boxes]
    names = labels + sorted(set(sample_labels) - set(labels))
    reporter = _Quiet()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        out = train_and_export(
            TrainingRequest(
                images=[s.jpeg for s in train],
                labels=[names.index(lab) for lab in sample_labels],
                sample_ids=[s.name for s in train],
                label_names=names,
                input_spec=spec,
                hyperparameters=hp,
                work_dir=Path(tmp),
                boxes=boxes,
            ),
            reporter,
        )
        ours_seconds = time.monotonic() - started
    ours = {
        fmt.value: coco_metrics(
            held_truth,
            LiteRTDetector(out.artifacts[fmt]).detect(x_held),
            labels,
            args.side,
            args.side,
        )
        for fmt in (ModelFormat.FLOAT32, ModelFormat.DYNAMIC_INT8, ModelFormat.INT8)
    }
    # Plain Keras: same network, loss and targets; every training scene, no augmentation.
    keras.utils.set_random_seed(args.seed)
    x_train = normalize(np.stack([decode_image(s.jpeg, spec) for s in train]), spec)
    y_train = det.encode_targets(truth(train), spec, len(labels))
    model = det.build_detector(spec, len(labels), hp)
    model.compile(optimizer=keras.optimizers.Adam(4e-3), loss=det.make_loss(len(labels)))
    started = time.monotonic()
    model.fit(x_train, y_train, batch_size=16, epochs=args.epochs, verbose=0, shuffle=True)
    plain_fit = time.monotonic() - started
    plain = coco_metrics(
        held_truth,
        det.keras_detections(model, x_held, len(labels), spec),
        labels,
        args.side,
        args.side,
    )
    print(
        json.dumps(
            {
                "train_scenes": args.train,
                "held_out_scenes": args.held_out,
                "held_out_boxes": int(sum(len(t) for t in held_truth)),
                "epochs": args.epochs,
                "side": args.side,
                "mobiletrain": {
                    fmt: {"map50": m["map50"], "map50_95": m["map50_95"]} for fmt, m in ours.items()
                },
                "mobiletrain_validation_keras": {
                    "map50": out.metrics["detection"]["map50"],
                    "map50_95": out.metrics["detection"]["map50_95"],
                },
                "plain_keras": {"map50": plain["map50"], "map50_95": plain["map50_95"]},
                "mobiletrain_fit_seconds": round(reporter.fit_seconds, 1),
                "mobiletrain_total_seconds": round(ours_seconds, 1),
                "plain_fit_seconds": round(plain_fit, 1),
                "load_average": [round(v, 2) for v in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
