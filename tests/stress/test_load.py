"""The load run of ``bench/load.py``, short: 200 devices watching a job while they upload.

Every device has its own token and connection, holds a ``WatchJob`` stream from before the
uploads start until the job ends, and uploads its own PNGs in two ``UploadSamples`` calls, while
another process appends progress events to the job (as a training worker does) and then the
final state. A correctness check, not a timing one: no error reaches any device, every sample
is stored exactly once (class counts exact), and every watcher received every event, 1..N in
order. It caught the SQLite write-lock regression of issue 18 (uploads queued behind event
appends until the server's deadline cancelled them).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402

DEVICES = load.QUICK_DEVICES
SAMPLES = 4


def test_devices_watching_while_uploading_lose_nothing() -> None:
    args = load.parser().parse_args(
        [
            "--devices",
            str(DEVICES),
            "--samples",
            str(SAMPLES),
            "--per-call",
            str(SAMPLES // 2),
            "--event-rate",
            "20",
            "--timeout",
            "240",
        ]
    )
    result = load.run(args)
    summary = {k: result[k] for k in ("errors", "error_examples", "stored_samples", "accepted")}
    assert result["errors"] == 0, summary
    assert result["accepted"] == DEVICES * SAMPLES, summary
    assert result["stored_samples"] == DEVICES * SAMPLES, summary
    assert result["duplicates"] == 0 and result["rejected"] == 0, summary
    assert result["class_counts_exact"], summary
    # The queued event, the progress events and the final state: each watcher got all, in order.
    assert result["events_stored"] >= 2
    assert result["watchers_with_every_event"] == DEVICES, result["watchers_with_every_event"]
    assert result["ok"]
