"""The dashboard's first-run steps name the same commands as the CLI's quick start.

The empty Projects page (``web/src/pages/projects.tsx``, ``FIRST_RUN``) shows four commands; a
newcomer copies them, so each must be a line of ``mobiletrain`` with no arguments, in order.
"""

from __future__ import annotations

import re
from pathlib import Path

from mobiletrain.cli import QUICK_START

PROJECTS_PAGE = Path(__file__).resolve().parents[3] / "web" / "src" / "pages" / "projects.tsx"


def _dashboard_commands() -> list[str]:
    source = PROJECTS_PAGE.read_text(encoding="utf-8")
    block = source[source.index("export const FIRST_RUN") :]
    block = block[: block.index("];")]
    return re.findall(r'command: "([^"]+)"', block)


def _cli_commands() -> list[str]:
    # "  1. mobiletrain serve     (--lan: ...)" -> "mobiletrain serve"
    found = []
    for line in QUICK_START.splitlines():
        match = re.match(r"\s*\d\.\s+(mobiletrain .+?)(?:\s{2,}.*)?$", line)
        if match:
            found.append(match.group(1).strip())
    return found


def test_first_run_steps_are_the_cli_quick_start() -> None:
    dashboard = _dashboard_commands()
    cli = _cli_commands()
    assert len(cli) == 4, QUICK_START
    assert dashboard == cli
