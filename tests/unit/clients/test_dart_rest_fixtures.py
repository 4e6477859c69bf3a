"""The Dart client's golden REST fixtures, replayed against a real server.

Every REST call the Dart package makes (``clients/dart/mobiletrain_client``) has a JSON file in
``test/fixtures/rest/``; the Dart unit tests replay those files with a mock HTTP client, and this
test sends the same requests to a real server (gRPC + HTTP in this process, real training in a
worker process) and checks that its answers match. So the Dart code and the server cannot drift
apart: a changed route, field or header fails one side or the other. Two static checks close the
loop: every ``/v1/...`` path written in the Dart sources has a fixture, and every fixture's path
is one the Dart sources use.

Fixture format (one request, one response)::

    {"description": "...", "scenario": "trained_model",
     "request": {"method": "GET", "path": "/v1/projects/{project}/models:check-update",
                 "query": {"format": "float32"}, "headers": {"Accept": "application/json"},
                 "json": null},
     "response": {"status": 200, "headers": {"content-type": "application/json"},
                  "json": {...}}}

* ``{name}`` in the request and in expected strings is a placeholder filled from the scenario
  (see ``SCENARIOS``); a string that is exactly ``{name}`` takes the value with its JSON type.
* In expected values ``"<int>"``, ``"<float>"`` (ints too), ``"<str>"``, ``"<bool>"``,
  ``"<sha256>"``, ``"<datetime>"`` (ISO 8601 ending in ``Z``) and ``"<any>"`` match any value of
  that type; a trailing ``?`` (``"<int?>"``) also accepts null. Inside a longer string the same
  tokens match a part of it (``"bytes <int>-<int>/<int>"``). Everything else must be equal, and
  objects must have exactly the expected keys: the fixture is the whole contract.
* Response headers listed must be present (other headers are not checked); a
  ``content-type`` without parameters is compared with the media type only.
* The body is ``"json"`` (an object or list), or ``"body": "<bytes>"`` (any non-empty bytes; with a
  ``content-length`` header they must have that length) or ``"body": ""`` (empty), or ``"sse"``:
  a list of Server-Sent Event templates ``{"id", "event", "data"}``; every event of the stream must
  match one template, every template must match some event, and the last event must match the
  last template (data-less messages such as ``retry:`` are skipped).

Scenarios: ``empty_project``, ``project_with_samples`` and ``running_job`` are prepared afresh
for each fixture; ``trained_model`` and ``federated_session`` are prepared once and shared, and
their fixtures run with GET requests first (a POST such as a federated update may move the
session on).
"""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from mobiletrain.config import Settings
from mobiletrain.server import RunningServer, start_server

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "clients" / "dart" / "mobiletrain_client"
FIXTURES_DIR = PACKAGE / "test" / "fixtures" / "rest"
DART_SOURCES = PACKAGE / "lib"

LABELS = ["rose", "tulip"]
INPUT_SPEC = {"width": 32, "height": 32, "color_mode": "rgb"}
TRAINED_FORMATS = [
    "float32",
    "float16",
    "dynamic-int8",
    "int8",
    "feature-extractor",
    "train-step",
    "head-inference",
    "head-signatures",
    "head-weights",
]
RANGE_START = 100
# A deadline, not a timing check: a training job on a loaded 2-core machine took over 120 s.
WAIT_SECONDS = 300.0

SCENARIOS: dict[str, set[str]] = {
    "empty_project": {"project", "project_id"},
    "project_with_samples": {"project", "project_id"},
    "running_job": {"project", "project_id", "job_id"},
    "trained_model": {
        "project",
        "project_id",
        "job_id",
        "version",
        "sha256",
        "float32_size",
        "range_start",
        "final_seq",
    },
    "federated_session": {
        "project",
        "project_id",
        "job_id",
        "session_id",
        "device_id",
        "round",
        "weights",
    },
}
"""Scenario name → the placeholders it fills (besides those of ``COMMON_PLACEHOLDERS``)."""

COMMON_PLACEHOLDERS = {"image_b64", "client_id", "missing_project"}
"""Filled in every scenario: a fresh PNG (base64) and a fresh UUID at each use, an unknown name."""

SHARED_SCENARIOS = {"trained_model", "federated_session"}
SCENARIO_ORDER = list(SCENARIOS)

REQUEST_KEYS = {"method", "path", "query", "headers", "json"}
RESPONSE_KEYS = {"status", "headers", "json", "body", "sse"}
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
TOKEN = re.compile(r"<(int|float|str|bool|sha256|datetime|any|bytes)(\??)>")
TOKEN_PATTERNS = {
    "int": r"-?\d+",
    "float": r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?",
    "str": r".*?",
    "bool": r"true|false",
    "sha256": r"[0-9a-f]{64}",
    "datetime": r"\d{4}-\d\d-\d\dT[0-9:.]+Z",
    "any": r".*?",
    "bytes": r".*?",
}


# --- fixtures on disk ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    """One golden fixture file."""

    name: str
    data: dict[str, Any]

    @property
    def scenario(self) -> str:
        """The server state the fixture needs."""
        return str(self.data.get("scenario", ""))

    @property
    def request(self) -> dict[str, Any]:
        """The request part."""
        return dict(self.data["request"])

    @property
    def response(self) -> dict[str, Any]:
        """The expected response part."""
        return dict(self.data["response"])

    @property
    def method(self) -> str:
        """Upper-case HTTP method."""
        return str(self.request["method"]).upper()


def load_fixtures() -> list[Fixture]:
    """Every fixture file, in the order the server test runs them.

    Fresh scenarios first, then the shared ones; within a scenario GET requests first, so a
    POST that changes shared state (a federated update) runs after the reads.
    """
    fixtures = [
        Fixture(path.stem, json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(FIXTURES_DIR.glob("*.json"))
    ]

    def order(f: Fixture) -> tuple[int, int, str]:
        rank = SCENARIO_ORDER.index(f.scenario) if f.scenario in SCENARIOS else len(SCENARIOS)
        return rank, 0 if f.method in ("GET", "HEAD") else 1, f.name

    return sorted(fixtures, key=order)


FIXTURES = load_fixtures()


def placeholders(value: Any) -> set[str]:
    """Placeholder names used anywhere in a JSON value."""
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(placeholders(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(placeholders(v) for v in value)) if value else set()
    return set()


# --- placeholder substitution and matching ------------------------------------------------

Values = dict[str, Any]
"""Placeholder values of a scenario; a callable value is called at each use."""


def _resolve(name: str, values: Values) -> Any:
    if name not in values:
        raise KeyError(f"unknown placeholder {{{name}}}; known: {', '.join(sorted(values))}")
    value = values[name]
    return value() if callable(value) else value


def substitute(value: Any, values: Values) -> Any:
    """``value`` with every ``{name}`` replaced (a whole-string placeholder keeps its type)."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole:
            return _resolve(whole.group(1), values)
        return PLACEHOLDER.sub(lambda m: str(_resolve(m.group(1), values)), value)
    if isinstance(value, dict):
        return {k: substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    return value


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str) or not value.endswith("Z"):
        return False
    try:
        datetime.fromisoformat(value[:-1] + "+00:00")
    except ValueError:
        return False
    return True


def _token_matches(kind: str, value: Any) -> bool:
    if kind == "any":
        return True
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind in ("str", "bytes"):
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "sha256":
        return isinstance(value, str) and re.fullmatch(TOKEN_PATTERNS["sha256"], value) is not None
    return kind == "datetime" and _is_datetime(value)


def _string_pattern(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    last = 0
    for m in TOKEN.finditer(template):
        parts.append(re.escape(template[last : m.start()]))
        parts.append(f"(?:{TOKEN_PATTERNS[m.group(1)]})")
        last = m.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts), re.DOTALL)


def mismatches(expected: Any, actual: Any, where: str = "$") -> list[str]:
    """Where ``actual`` differs from the (substituted) template ``expected``."""
    if isinstance(expected, str):
        token = TOKEN.fullmatch(expected)
        if token:
            if actual is None and token.group(2) == "?":
                return []
            if _token_matches(token.group(1), actual):
                return []
            return [f"{where}: expected {expected}, got {actual!r}"]
        if TOKEN.search(expected) and isinstance(actual, str):
            if _string_pattern(expected).fullmatch(actual):
                return []
            return [f"{where}: {actual!r} does not match {expected!r}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        problems = [f"{where}: missing key {k!r}" for k in expected if k not in actual]
        problems += [
            f"{where}: unexpected key {k!r} (value {actual[k]!r})"
            for k in actual
            if k not in expected
        ]
        for key in expected:
            if key in actual:
                problems += mismatches(expected[key], actual[key], f"{where}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list, got {actual!r}"]
        if len(expected) != len(actual):
            return [f"{where}: expected {len(expected)} items, got {len(actual)}: {actual!r}"]
        return [
            p
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for p in mismatches(e, a, f"{where}[{i}]")
        ]
    same = expected == actual and type(expected) is type(actual)
    if isinstance(expected, float) and isinstance(actual, int | float):
        same = expected == actual and not isinstance(actual, bool)
    return [] if same else [f"{where}: expected {expected!r}, got {actual!r}"]


def parse_sse(text: str) -> list[dict[str, Any]]:
    """SSE text → messages with data, as ``{"id": int, "event": str, "data": JSON}``."""
    events: list[dict[str, Any]] = []
    fields: dict[str, list[str]] = {}
    for line in [*text.split("\n"), ""]:
        line = line.rstrip("\r")
        if not line:
            if "data" in fields:
                raw_id = fields.get("id", [""])[-1]
                events.append(
                    {
                        "id": int(raw_id) if raw_id.isdigit() else raw_id,
                        "event": fields.get("event", ["message"])[-1],
                        "data": json.loads("\n".join(fields["data"])),
                    }
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key, []).append(value[1:] if value.startswith(" ") else value)
    return events


def sse_mismatches(templates: list[Any], events: list[dict[str, Any]]) -> list[str]:
    """Check a stream against per-kind templates (see the module docstring)."""
    if not events:
        return ["the event stream carried no events"]
    problems: list[str] = []
    used: set[int] = set()
    for i, event in enumerate(events):
        matching = [j for j, t in enumerate(templates) if not mismatches(t, event)]
        if not matching:
            same_kind = [t for t in templates if t.get("event") == event.get("event")]
            detail = mismatches(same_kind[0], event, f"event[{i}]") if same_kind else []
            problems.append(f"event[{i}] ({event.get('event')}) matches no template: {detail}")
        used.update(matching)
    problems += [f"template[{j}] matched no event" for j in range(len(templates)) if j not in used]
    problems += [f"last event: {p}" for p in mismatches(templates[-1], events[-1], "last")]
    return problems


# --- the server and its scenarios ---------------------------------------------------------


def png_b64(seed: int | None = None) -> str:
    """A small random RGB PNG, base64-encoded (every call a new image unless seeded)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass
class Server:
    """A running server and an admin HTTP client for it."""

    running: RunningServer
    http: httpx.Client
    token: str
    counter: Iterator[int] = field(default_factory=itertools.count)

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        """The JSON of a response that must have ``status``."""
        assert response.status_code == status, f"{response.request.url}: {response.text}"
        return response.json() if response.content else None

    def wait_for(self, what: str, probe: Callable[[], Any]) -> Any:
        """Poll ``probe`` until it returns something truthy."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            value = probe()
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server (gRPC + HTTP on free ports, two training workers) for the module."""
    data = tmp_path_factory.mktemp("dart-fixtures") / "data"
    settings = Settings(data_dir=data, grpc_port=0, http_port=0, max_workers=2)
    with contextlib.redirect_stdout(io.StringIO()):
        running = start_server(settings)
    token = (data / "admin-token").read_text().strip()
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{running.http_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    try:
        yield Server(running, http, token)
    finally:
        http.close()
        running.stop()


class Scenarios:
    """Prepares the server state a fixture names and returns its placeholder values."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.shared: dict[str, Values] = {}

    def prepare(self, scenario: str) -> tuple[Values, Callable[[], None]]:
        """Values for ``scenario`` and a cleanup to run after the fixture."""
        common: Values = {
            "image_b64": png_b64,
            "client_id": lambda: str(uuid.uuid4()),
            "missing_project": f"no-such-project-{next(self.server.counter)}",
        }
        if scenario in SHARED_SCENARIOS:
            if scenario not in self.shared:
                self.shared[scenario] = getattr(self, f"_{scenario}")()
            return {**common, **self.shared[scenario]}, lambda: None
        cleanups: list[Callable[[], None]] = []
        values = getattr(self, f"_{scenario}")(cleanups)

        def cleanup() -> None:
            for step in cleanups:
                step()

        return {**common, **values}, cleanup

    def _project(self, prefix: str, samples: int) -> Values:
        s = self.server
        name = f"{prefix}-{next(s.counter)}"
        body = {"name": name, "labels": LABELS, "input_spec": INPUT_SPEC}
        project = s.ok(s.http.post("/v1/projects", json=body), 201)
        if samples:
            items = [
                {"image": png_b64(), "label": LABELS[i % 2], "client_id": f"seed-{i}"}
                for i in range(samples)
            ]
            reply = s.ok(s.http.post(f"/v1/projects/{name}/samples:base64", json=items))
            assert reply["accepted"] == samples, reply
        return {"project": name, "project_id": project["id"]}

    def _empty_project(self, cleanups: list[Callable[[], None]]) -> Values:
        return self._project("empty", 0)

    def _project_with_samples(self, cleanups: list[Callable[[], None]]) -> Values:
        return self._project("samples", 12)

    def _running_job(self, cleanups: list[Callable[[], None]]) -> Values:
        s = self.server
        values = self._project("running", 12)
        options = {"epochs": 1000, "batch_size": 4, "formats": ["float32"]}
        job = s.ok(s.http.post(f"/v1/projects/{values['project']}/jobs", json=options), 201)

        def running() -> bool:
            return bool(s.ok(s.http.get(f"/v1/jobs/{job['id']}"))["state"] == "running")

        s.wait_for("the job to run", running)

        def cancel() -> None:
            s.http.post(f"/v1/jobs/{job['id']}:cancel")  # frees the worker; may have ended

        cleanups.append(cancel)
        return {**values, "job_id": job["id"]}

    def _trained_model(self) -> Values:
        s = self.server
        values = self._project("trained", 12)
        options = {"epochs": 1, "batch_size": 4, "formats": TRAINED_FORMATS}
        job = s.ok(s.http.post(f"/v1/projects/{values['project']}/jobs", json=options), 201)

        def finished() -> Any:
            current = s.ok(s.http.get(f"/v1/jobs/{job['id']}"))
            return current if current["state"] in ("succeeded", "failed", "cancelled") else None

        done = s.wait_for("training", finished)
        assert done["state"] == "succeeded", done
        check = s.ok(
            s.http.get(
                f"/v1/projects/{values['project']}/models:check-update",
                params={"format": "float32"},
            )
        )
        events = s.ok(
            s.http.get(
                f"/v1/jobs/{job['id']}/events", params={"stream": "false", "page_size": 1000}
            )
        )
        return {
            **values,
            "job_id": job["id"],
            "version": done["model_version"],
            "sha256": check["sha256"],
            "float32_size": check["size"],
            "range_start": RANGE_START,
            "final_seq": events["events"][-1]["seq"],
        }

    def _federated_session(self) -> Values:
        s = self.server
        values = self._project("federated", 12)
        config = {
            "min_devices": 1,
            "min_available_devices": 1,
            "rounds": 3,
            "round_deadline_seconds": 600.0,
        }
        session = s.ok(
            s.http.post(f"/v1/projects/{values['project']}/federated/sessions", json=config), 201
        )

        def ready() -> bool:
            state = s.ok(s.http.get(f"/v1/federated/sessions/{session['id']}"))["state"]
            assert state in ("preparing", "running"), state
            return bool(state == "running")

        s.wait_for("the federated session", ready)
        device = s.ok(
            s.http.post(
                f"/v1/projects/{values['project']}/federated/devices",
                json={"info": {"platform": "pytest"}},
            ),
            201,
        )

        def task() -> Any:
            reply = s.ok(
                s.http.get(
                    f"/v1/projects/{values['project']}/federated/task",
                    params={"device_id": device["device_id"], "wait_seconds": 5},
                )
            )
            return reply["task"] if reply["status"] == "task" else None

        work = s.wait_for("a federated task", task)
        return {
            **values,
            "job_id": session["job_id"],
            "session_id": session["id"],
            "device_id": device["device_id"],
            "round": work["round"],
            "weights": work["weights"],
        }


@pytest.fixture(scope="module")
def scenarios(server: Server) -> Scenarios:
    """Scenario preparation over the module's server."""
    return Scenarios(server)


# --- the checks ---------------------------------------------------------------------------


def check_fixture(server: Server, fixture: Fixture, values: Values) -> list[str]:
    """Send the fixture's request to the server; the ways its answer differs."""
    request = substitute(fixture.request, values)
    headers = {k: str(v) for k, v in (request.get("headers") or {}).items()}
    query = {k: str(v) for k, v in (request.get("query") or {}).items()}
    body = request.get("json")
    response = server.http.request(
        fixture.method,
        request["path"],
        params=query,
        headers=headers,
        content=None if body is None else json.dumps(body).encode(),
    )
    expected = substitute(fixture.response, values)
    problems: list[str] = []
    if response.status_code != expected["status"]:
        problems.append(f"status {response.status_code} (expected {expected['status']})")
    for name, template in (expected.get("headers") or {}).items():
        actual = response.headers.get(name)
        want = str(template)
        if actual is None:
            problems.append(f"header {name} missing")
        elif name.lower() == "content-type" and ";" not in want:
            if actual.split(";")[0].strip() != want:
                problems.append(f"header {name}: {actual!r} (expected {want!r})")
        else:
            problems += mismatches(want, actual, f"header {name}")
    if problems:
        return [*problems, f"body: {response.text[:500]}"]
    if "sse" in expected:
        return sse_mismatches(expected["sse"], parse_sse(response.text))
    if expected.get("json") is not None:
        try:
            actual_json = response.json()
        except ValueError:
            return [f"body is not JSON: {response.text[:200]!r}"]
        return mismatches(expected["json"], actual_json)
    body_template = expected.get("body", "")
    if body_template == "<bytes>":
        if not response.content:
            return ["expected a binary body, got none"]
        length = response.headers.get("content-length")
        if length is not None and int(length) != len(response.content):
            return [f"body has {len(response.content)} bytes, content-length says {length}"]
        return []
    if body_template == "":
        return [] if not response.content else [f"expected no body, got {response.text[:200]!r}"]
    return [f"unsupported response body template {body_template!r}"]


@pytest.mark.slow
@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_fixture_matches_the_real_server(
    fixture: Fixture, server: Server, scenarios: Scenarios
) -> None:
    values, cleanup = scenarios.prepare(fixture.scenario)
    try:
        problems = check_fixture(server, fixture, values)
    finally:
        cleanup()
    assert not problems, f"{fixture.name}.json:\n  " + "\n  ".join(problems)


def test_fixtures_are_well_formed() -> None:
    """Every file parses, names a known scenario and uses only that scenario's placeholders."""
    assert FIXTURES, f"no fixtures in {FIXTURES_DIR}"
    names = [p.stem for p in FIXTURES_DIR.glob("*.json")]
    assert sorted(names) == sorted(f.name for f in FIXTURES)
    for f in FIXTURES:
        assert f.data.keys() <= {"description", "scenario", "request", "response"}, f.name
        assert str(f.data.get("description", "")).strip(), f"{f.name}: no description"
        assert f.scenario in SCENARIOS, f"{f.name}: unknown scenario {f.scenario!r}"
        assert f.request.keys() <= REQUEST_KEYS and {"method", "path"} <= f.request.keys()
        assert str(f.request["path"]).startswith("/v1/"), f.name
        assert f.response.keys() <= RESPONSE_KEYS and "status" in f.response, f.name
        if f.request.get("json") is not None:
            headers = f.request.get("headers") or {}
            content_types = [v for k, v in headers.items() if k.lower() == "content-type"]
            assert content_types == ["application/json"], f"{f.name}: JSON body, no Content-Type"
        known = SCENARIOS[f.scenario] | COMMON_PLACEHOLDERS
        used = placeholders(f.request) | placeholders(f.response)
        assert used <= known, f"{f.name}: placeholders {sorted(used - known)} not in {f.scenario}"


# --- Dart sources ↔ fixtures --------------------------------------------------------------

_DART_LITERALS = re.compile(r"""(?:'(?:[^'\\\n]|\\.)*'\s*|"(?:[^"\\\n]|\\.)*"\s*)+""")
_DART_PATH_CONSTANT = re.compile(
    r"(?:String\s+get\s+(\w+)\s*=>|(?:const|final)\s+(?:String\s+)?(\w+)\s*=)\s*$"
)
_DART_INTERPOLATION = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _literal_text(sequence: str) -> str:
    """The text of adjacent Dart string literals (``'a' 'b'`` → ``ab``), escapes kept."""
    return "".join(m.group(0)[1:-1] for m in re.finditer(r"'[^'\n]*'|\"[^\"\n]*\"", sequence))


def _inline(literal: str, constants: dict[str, str]) -> str:
    """Interpolated path constants inlined, any other interpolation as ``{}``."""

    def one(m: re.Match[str]) -> str:
        name = (m.group(1) or m.group(2) or "").strip()
        return _inline(constants[name], constants) if name in constants else "{}"

    return _DART_INTERPOLATION.sub(one, literal)


def dart_paths() -> dict[str, list[str]]:
    """Path templates the Dart sources request → the files that request them.

    Reads the ``/v1/...`` string literals (adjacent literals joined, comments skipped); a path
    prefix held in a getter or constant (``String get _base => '/v1/projects/$p/federated';``)
    is inlined where it is interpolated and is not a call itself. Other interpolations
    (``${_seg(project)}``, ``$version``) become ``{}``; a query part is dropped.
    """
    found: dict[str, list[str]] = {}
    for path in sorted(DART_SOURCES.rglob("*.dart")):
        if "generated" in path.parts:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("//"))
        constants: dict[str, str] = {}
        uses: list[str] = []
        for m in _DART_LITERALS.finditer(text):
            literal = _literal_text(m.group(0))
            definition = _DART_PATH_CONSTANT.search(text[max(0, m.start() - 120) : m.start()])
            if definition and literal.startswith("/v1/"):
                constants[definition.group(1) or definition.group(2)] = literal
            else:
                uses.append(literal)

        for literal in uses:
            template = _inline(literal, constants).split("?")[0]
            if template.startswith("/v1/"):
                found.setdefault(template, []).append(path.relative_to(PACKAGE).as_posix())
    return found


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("".join(r"[^/?]+" if p == "{}" else re.escape(p) for p in _split(template)))


def _split(template: str) -> list[str]:
    return [p for p in re.split(r"(\{\})", template) if p]


def _fixture_path_as_dart(path: str) -> str:
    """A fixture path with its placeholders as ``{}`` (``/v1/jobs/{job_id}`` → ``/v1/jobs/{}``)."""
    return PLACEHOLDER.sub("{}", path)


def test_every_dart_rest_call_has_a_fixture() -> None:
    """Each path the Dart code requests is the path of at least one fixture."""
    paths = dart_paths()
    assert any("rest_transport.dart" in f for files in paths.values() for f in files)
    fixture_paths = {_fixture_path_as_dart(str(f.request["path"])) for f in FIXTURES}
    missing = {
        template: files
        for template, files in paths.items()
        if not any(_template_regex(template).fullmatch(p) for p in fixture_paths)
    }
    assert not missing, f"Dart REST calls without a fixture in {FIXTURES_DIR.name}: {missing}"


def test_every_fixture_is_a_call_the_dart_code_makes() -> None:
    """Each fixture's path is requested somewhere in the Dart sources (no stale fixtures)."""
    templates = list(dart_paths())
    stale = [
        f.name
        for f in FIXTURES
        if not any(
            _template_regex(t).fullmatch(_fixture_path_as_dart(str(f.request["path"])))
            for t in templates
        )
    ]
    assert not stale, f"fixtures whose path no Dart source uses: {stale}"


def test_matcher_rules() -> None:
    """The template language behaves as documented."""
    assert not mismatches({"a": "<int>", "b": "<float>"}, {"a": 1, "b": 2})
    assert mismatches({"a": "<int>"}, {"a": True})
    assert mismatches({"a": "<int>"}, {"a": 1, "extra": 0})
    assert not mismatches("<int?>", None) and mismatches("<int>", None)
    assert not mismatches("bytes <int>-<int>/<int>", "bytes 100-199/200")
    assert not mismatches("<datetime>", "2026-01-02T03:04:05.123456Z")
    assert mismatches("<sha256>", "ABC")
    assert substitute({"r": "{n}", "s": "v{n}"}, {"n": 3}) == {"r": 3, "s": "v3"}
    events = parse_sse('retry: 3000\n\nid: 1\nevent: state\ndata: {"x": 1}\n\n: keep-alive\n\n')
    assert events == [{"id": 1, "event": "state", "data": {"x": 1}}]
    assert _template_regex("/v1/jobs/{}:cancel").fullmatch("/v1/jobs/{}:cancel")
    assert _template_regex("/v1/projects/{}/models/{}/manifest").fullmatch(
        "/v1/projects/{}/models/0/manifest"
    )
