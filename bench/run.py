"""Run the benchmark suite: ``make bench`` (or ``python bench/run.py [--quick] [--only NAME]``).

Every benchmark measures mobiletrain side by side with a named baseline in the same run and
reports ratios. A full run writes ``bench/results/latest.json`` (every figure, the machine, a
timestamp and the git commit) and ``bench/results/latest.md``, prints the table and rewrites the
figures section of ``docs/benchmarks.md``. ``--quick`` (a smoke run with small inputs) and
``--only`` write ``bench/results/partial.*`` instead and leave the docs alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, sys.path[0] is bench/ (whose module names could shadow packages): import the
# ``bench`` package from the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import (  # noqa: E402
    audio_training,
    federated,
    fleet_latency,
    ingest,
    latency,
    load,
    progress_first,
    train_memory,
    training,
)
from bench.common import (  # noqa: E402
    TABLE_HEADER,
    Row,
    format_ratio,
    git_commit,
    load_average,
    machine,
)

RESULTS_DIR = HERE / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- BEGIN FIGURES: written by bench/run.py; edit the text above this line only -->"
END = "<!-- END FIGURES -->"


def _ingest(quick: bool) -> dict[str, Any]:
    return ingest.run_ingest(100, 100, rounds=1) if quick else ingest.run_ingest(2000, rounds=2)


BENCHMARKS: dict[str, tuple[Callable[[bool], dict[str, Any]], Callable[..., list[Row]]]] = {
    "ingest": (_ingest, ingest.rows),
    "training": (training.run_training, training.rows),
    "train_memory": (train_memory.run_train_memory, train_memory.rows),
    "audio_training": (audio_training.run_audio_training, audio_training.rows),
    "latency": (latency.run_latency, latency.rows),
    "progress_first": (progress_first.run, progress_first.rows),
    "federated": (federated.run_federated, federated.rows),
    "load": (load.run_load, load.rows),
    "fleet_latency": (fleet_latency.run_fleet, fleet_latency.rows),
}
DESCRIPTIONS = {
    "ingest": "1. ingest against Flask (and the in-process limit)",
    "training": "2. training overhead against a plain Keras script",
    "train_memory": "2b. training worker memory against dataset size: streamed vs in memory",
    "audio_training": "2a. audio training overhead against plain Keras (espeak-ng keywords)",
    "latency": "3-5. progress latency, model delivery, predict (one job)",
    "progress_first": "StartJob → first progress event, warm worker against a cold one",
    "federated": "federated round against Flower (50 devices)",
    "load": "6. 1,000 devices watching a job while uploading (correctness under load)",
    "fleet_latency": "progress latency pushed vs polled: one server, two replicas via HAProxy",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[Row]) -> str:
    """The rows as a GitHub markdown table."""
    lines = [
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|" + "|".join("---" for _ in TABLE_HEADER) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def goal_summary(rows: list[Row]) -> list[str]:
    """One line per row that has a goal: met or missed."""
    out = []
    for row in rows:
        if row.met is None:
            continue
        verdict = "met" if row.met else "**missed**"
        ratio = f"{format_ratio(row.ratio)}×" if row.ratio is not None else "n/a"
        out.append(f"- {verdict}: {row.benchmark} — {row.variant}: {ratio} (goal {row.goal})")
    return out


def markdown_report(doc: dict[str, Any], rows: list[Row], heading: str = "##") -> str:
    """The figures section: provenance, the table, goals met or missed."""
    m = doc["machine"]
    load = doc["load_average"]
    durations = ", ".join(f"{k} {v:.0f} s" for k, v in doc["durations_s"].items())
    parts = [
        f"{heading} Latest figures",
        "",
        f"- Command: `{doc['command']}`",
        f"- Run: {doc['timestamp']} · commit `{doc['git_commit']}` · total "
        f"{doc['total_s'] / 60:.1f} min ({durations})",
        f"- Machine: {m['cpus']} CPUs ({m['processor']}), {m['memory_gib']} GiB, "
        f"{m['platform']}, Python {m['python']}",
        f"- Load average (1/5/15 min) at start {load['start']}, at end {load['end']}: "
        "other work on the machine makes figures noisy.",
        "",
        markdown_table(rows),
        "",
        f"{heading}# Goals",
        "",
        *(goal_summary(rows) or ["- no goal rows in this run"]),
        "",
        "Every figure, with the raw per-run numbers, is in `bench/results/latest.json`.",
    ]
    return "\n".join(parts) + "\n"


def update_docs(section: str, path: Path = DOCS) -> None:
    """Replace the text between the figure markers of docs/benchmarks.md (add them if absent)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n\n{section}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def print_table(rows: list[Row]) -> None:
    """The table on the terminal (rich when available)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency
        print(markdown_table(rows))
        return
    table = Table(*TABLE_HEADER, show_lines=True, title="mobiletrain benchmarks")
    for row in rows:
        table.add_row(*[c.replace("**", "") for c in row.cells()])
    Console(width=200).print(table)


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks, write the results, print the table."""
    parser = argparse.ArgumentParser(description="mobiletrain benchmarks against baselines")
    parser.add_argument("--quick", action="store_true", help="fast smoke run with small inputs")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        help="run only this benchmark (repeatable)",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    selected = args.only or list(BENCHMARKS)
    full = not args.quick and not args.only

    command = "make bench" if full else "python bench/run.py " + " ".join(argv or sys.argv[1:])
    started = time.monotonic()
    doc: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": machine(),
        "command": command.strip(),
        "quick": args.quick,
        "benchmarks": selected,
        "load_average": {"start": load_average()},
        "durations_s": {},
        "results": {},
    }
    rows: list[Row] = []
    for name in selected:
        run, to_rows = BENCHMARKS[name]
        print(f"== {DESCRIPTIONS[name]}{' (quick)' if args.quick else ''}", flush=True)
        t0 = time.monotonic()
        result = run(args.quick)
        doc["durations_s"][name] = round(time.monotonic() - t0, 1)
        doc["results"][name] = result
        rows += to_rows(result)
        print(f"   done in {doc['durations_s'][name]:.0f} s", flush=True)
    doc["load_average"]["end"] = load_average()
    doc["total_s"] = round(time.monotonic() - started, 1)
    doc["rows"] = [r.to_dict() for r in rows]

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = "latest" if full else "partial"
    (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    report = markdown_report(doc, rows)
    (RESULTS_DIR / f"{stem}.md").write_text("# mobiletrain benchmarks\n\n" + report)
    if full and not args.no_docs:
        update_docs(report)
    print_table(rows)
    print("\n".join(goal_summary(rows)))
    print(f"total {doc['total_s'] / 60:.1f} min; results in bench/results/{stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
