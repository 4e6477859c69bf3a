"""Schemathesis against the real server's OpenAPI document, with an admin token.

Every operation of ``/openapi.json`` gets schemathesis' own per-operation test: the examples,
coverage (boundary values, missing and wrong-typed parameters, unsupported methods) and fuzzing
phases, with valid (positive) and invalid (negative) requests. Its checks run on every response:
no 5xx, every status documented for the operation, content types, headers and bodies as
documented, invalid requests refused with 4xx, valid ones not refused for their shape, a 405's
``Allow`` header, and every operation refusing a request without a token or with a wrong one
(``ignored_auth``).

Each operation runs twice: with generated path parameters (mostly "not found"), and with path
parameters naming things that exist (a project with samples, a finished job, a model version, a
token, an upload), so the success paths are fuzzed too. An operation whose path parameter names
a kind of thing not seeded here runs with generated values only, and the test says which.

Nothing is skipped. The SSE stream ``GET /v1/jobs/{job_id}/events`` is fuzzed as well: the
server runs without a training worker (``max_workers=0``), and the only existing job handed to
it is a finished one, whose stream ends after its final event (a queued job's stream would stay
open, as designed).

Schemathesis' pytest loader ``from_fixture`` cannot be used with this pytest (it writes
``Function._nodeid``, which pytest 9.2 removed), so the server is started by a fixture, the
schema loaded with ``schemathesis.openapi.from_url`` and each operation's test built with the
same builder the pytest plugin uses. Bounded and reproducible: at most ``MAX_EXAMPLES`` fuzzing
cases per operation and variant, a fixed seed, Hypothesis derandomized, no example database.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from PIL import Image
from schemathesis.checks import CheckFunction
from schemathesis.config import PositiveDataAcceptanceConfig
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.pytest._test_builder import build_operation_test
from schemathesis.specs.openapi.checks import allow_header_conformance, negative_data_rejection

from mobiletrain.config import Settings
from mobiletrain.core.types import Artifact, ModelFormat, ModelVersion
from mobiletrain.server import RunningServer, start_server

pytestmark = pytest.mark.timeout(300)

# PATCH /v1/uploads/{id} takes tus' media type for raw chunk bytes.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

MAX_EXAMPLES = 20
"""Fuzzing-phase cases per operation and variant (about 30 per operation over both)."""

SEED = 20240611
PROJECT = "fuzz-project"


@dataclass
class Live:
    server: RunningServer
    admin: str
    http: str
    project_id: str
    sample_id: str
    job_id: str
    token_id: str
    upload_id: str


def _png(seed: int, size: int = 16) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _seed(server: RunningServer, http: str, admin: str) -> Live:
    """A project with samples, a cancelled job, a device token, an upload, a model version."""
    headers = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=http, headers=headers, timeout=30) as client:
        project = client.post("/v1/projects", json={"name": PROJECT}).raise_for_status().json()
        files = [("files", (f"{i}.png", _png(i), "image/png")) for i in range(4)]
        uploaded = client.post(
            f"/v1/projects/{PROJECT}/samples",
            files=files,
            data={"labels": ["cat", "dog", "cat", "dog"]},
        ).raise_for_status()
        sample_id = uploaded.json()["results"][0]["sample_id"]
        job = client.post(f"/v1/projects/{PROJECT}/jobs", json={"epochs": 1}).raise_for_status()
        job_id = job.json()["id"]
        client.post(f"/v1/jobs/{job_id}:cancel").raise_for_status()  # final: its SSE stream ends
        token = client.post(
            "/v1/tokens", json={"kind": "device", "project": PROJECT, "name": "fuzz"}
        ).raise_for_status()
        upload_id = "no-uploads"
        if "/v1/projects/{project}/uploads" in client.get("/openapi.json").json()["paths"]:
            upload = client.post(
                f"/v1/projects/{PROJECT}/uploads",
                json={"client_id": "large", "label": "cat", "size": 5000},
            ).raise_for_status()
            upload_id = upload.json()["id"]
    # A model version with two random-byte files and no float32 file, so server-side predict
    # answers FORMAT_NOT_FOUND rather than loading a fake model (real predictions are covered
    # by the end-to-end test); download, ranges and update checks work on the int8 file.
    container = server.container
    artifacts = {}
    for fmt, data in ((ModelFormat.KERAS, os.urandom(300)), (ModelFormat.INT8, os.urandom(900))):
        artifacts[fmt] = Artifact(format=fmt, sha256=container.blobs.put(data), size=len(data))
    container.blobs.sync()
    container.store.create_model_version(
        ModelVersion(
            project_id=project["id"],
            version=0,
            job_id=job_id,
            created_at=datetime.now(UTC),
            metrics={"accuracy": 0.5, "tflite": {"int8": {"accuracy": 0.5}}},
            manifest={"labels": ["cat", "dog"]},
            artifacts=artifacts,
        )
    )
    return Live(
        server, admin, http, project["id"], sample_id, job_id, token.json()["id"], upload_id
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data_dir = tmp_path_factory.mktemp("rest-fuzz") / "data"
    # No training worker (a fuzzed POST .../jobs only queues a job); no request rate limit
    # (the fuzzer sends up to a few hundred requests a second with one token).
    settings = Settings(
        data_dir=data_dir,
        grpc_port=0,
        http_port=0,
        max_workers=0,
        rate_limit_per_second=0,
        # `ignored_auth` sends hundreds of requests without a token: 401 each, never 429.
        unauthenticated_rate_per_second=0,
    )
    server = start_server(settings)
    try:
        admin = (data_dir / "admin-token").read_text().strip()
        yield _seed(server, f"http://127.0.0.1:{server.http_port}", admin)
    finally:
        server.stop()


EXISTING_PATH_PARAMETERS = ("project", "sample_id", "job_id", "version", "token_id", "upload_id")


def _existing(live: Live) -> dict[str, str]:
    return {
        "path.project": PROJECT,
        "path.sample_id": live.sample_id,
        "path.job_id": live.job_id,
        "path.version": "1",
        "path.token_id": live.token_id,
        "path.upload_id": live.upload_id,
    }


def _load_schema(live: Live, existing: bool) -> Any:
    config = schemathesis.Config(seed=SEED)
    project = config.projects.override
    project.update(base_url=live.http, parameters=_existing(live) if existing else None)
    # Unknown query parameters and headers are ignored, as HTTP APIs commonly do (cache
    # busters, proxies): an extra one does not make a request invalid here.
    project.generation.allow_extra_parameters = False
    # The token is sent explicitly with every call (not generated), so the `ignored_auth`
    # check probes each operation without it and with a wrong one: both must give 401.
    project.generation.with_security_parameters = False
    # Schema-valid is not always acceptable: whether an image decodes, a label is in a fixed
    # label set or a name avoids '/' is decided by the core, which answers 400 with a precise
    # catalog code (see api/rest/schemas.py). The rest of the check stays.
    project.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
        expected_statuses=[*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "400"]
    )
    return schemathesis.openapi.from_url(f"{live.http}/openapi.json", config=config)


HYPOTHESIS_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


BYTE_BODIES = ("multipart/form-data", "application/octet-stream", "application/offset+octet-stream")


def _excluded_checks(op: Any) -> list[CheckFunction]:
    excluded: list[CheckFunction] = []
    if any(body.media_type in BYTE_BODIES for body in op.body):
        # In a multipart body every form value is text and every file is bytes, and a raw
        # chunk is bytes, so a "number instead of a string" mutation is a valid request on
        # the wire (a label "1e16", a file or chunk whose bytes are not an image: rejected
        # per sample, with 200). They are still checked for 5xx, status and body schema.
        excluded.append(negative_data_rejection)
    if ":" in op.path:
        # `/jobs/{job_id}:cancel` is also `/jobs/{job_id}` with job_id "x:cancel", so a 405
        # there truthfully allows GET too, which the `:cancel` operation does not document.
        excluded.append(allow_header_conformance)
    return excluded


def _fuzz(schema: Any, op: Any, headers: dict[str, str], counts: Counter[str]) -> None:
    """Run schemathesis' per-operation test (examples, coverage and fuzzing phases)."""
    excluded = _excluded_checks(op)

    def check(case: schemathesis.Case) -> None:
        counts[case.meta.phase.name.value if case.meta else "?"] += 1
        case.call_and_validate(headers=headers, excluded_checks=excluded, timeout=30)

    test = build_operation_test(
        config=schema.config,
        operation=op,
        test_func=check,
        given_kwargs={},
        feedback=FeedbackSources(),
        explicit_settings=HYPOTHESIS_SETTINGS,
    )
    test()


def test_rest_api_conforms_to_its_openapi(live: Live) -> None:
    auth = {"Authorization": f"Bearer {live.admin}"}
    raw = httpx.get(f"{live.http}/openapi.json").json()
    declared = sum(len(item) for item in raw["paths"].values())
    failures: list[str] = []
    generated_only: list[str] = []
    counts: dict[str, Counter[str]] = {}
    for existing in (False, True):
        schema = _load_schema(live, existing)
        variant = "existing" if existing else "generated"
        counts[variant] = Counter()
        operations = [result.ok() for result in schema.get_all_operations()]  # raises on errors
        assert len(operations) == declared >= 28
        for op in operations:
            if existing and not list(op.path_parameters):
                continue
            if existing and op.label == "DELETE /v1/projects/{project}":
                # Deleting the seeded project would leave every later operation nothing to
                # address; its success path is tested in tests/e2e/test_cli_newcomer.py.
                continue
            unknown = {p.name for p in op.path_parameters} - set(EXISTING_PATH_PARAMETERS)
            if existing and unknown:
                # Fuzzed with generated path parameters only: seed a thing of this kind in
                # _seed() and add it to _existing() to fuzz its success paths too.
                generated_only.append(op.label)
                continue
            try:
                _fuzz(schema, op, auth, counts[variant])
            except Unsatisfiable:
                pass  # no request of this kind exists (e.g. negative ones for path-only routes)
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{op.label} [{variant} path parameters]: {exc}")
    total = sum(sum(c.values()) for c in counts.values())
    print(f"schemathesis: {declared} operations, {total} cases: {counts}")
    if generated_only:
        print(f"no existing {sorted(generated_only)!r} to address: generated path values only")
    assert not failures, "\n\n".join(failures)


# --- Unicode-category fuzzing of paths, queries and headers ----------------------------------

UNICODE_CATEGORIES = ("Nd", "No", "Nl", "Zs", "Mn", "Me", "Lo", "Sk", "Pd")
"""Digits of every script, other numerals, spaces, combining marks, letters, modifiers,
dashes: what ``str.isdigit()`` / ``int()`` / ``strip()`` disagree about."""

TRICKY_DIGITS = (
    "²",
    "¹0",
    "①",
    "١",
    "٣٤",
    "𝟙",
    "1\u0301",
    "\u00a01",
    "1\u200b",
    "１２",
    "-0",
    "0" * 30,
)
"""Digits that only look like numbers to ``isdigit()``, or to people."""

UNICODE_TEXT = st.one_of(
    st.sampled_from(TRICKY_DIGITS),
    # Only digits, of any script and kind ("²", "١٢", "1𝟙"): isdigit() says yes, int() may not.
    st.text(
        alphabet=st.one_of(st.characters(categories=("Nd", "No")), st.sampled_from("0123456789")),
        min_size=1,
        max_size=6,
    ),
    # Digits with spaces, combining marks, letters, dashes around or between them.
    st.text(
        alphabet=st.one_of(
            st.characters(categories=UNICODE_CATEGORIES, exclude_characters="/?#%"),
            st.sampled_from("0123456789-"),
        ),
        min_size=1,
        max_size=12,
    ),
)
"""Values mixing ASCII digits with the categories above."""

HEADER_NAMES = ("Range", "If-None-Match", "Last-Event-ID", "Upload-Offset", "Upload-Checksum")


def _unicode_cases(paths: dict[str, Any]) -> list[tuple[str, str, list[str], list[str]]]:
    cases = []
    for template, item in paths.items():
        for method, op in item.items():
            params = op.get("parameters", [])
            path_names = [p["name"] for p in params if p["in"] == "path"]
            query_names = [p["name"] for p in params if p["in"] == "query"]
            cases.append((method.upper(), template, path_names, query_names))
    return cases


def test_unicode_categories_in_paths_queries_and_headers(live: Live) -> None:
    """No 5xx and the catalog's error shape, whatever Unicode digits, spaces or marks are put
    into path parameters, query values and headers (including values that name real things)."""
    paths = httpx.get(f"{live.http}/openapi.json").json()["paths"]
    cases = _unicode_cases(paths)
    existing = {k.split(".", 1)[1]: v for k, v in _existing(live).items()}
    failures: list[str] = []
    client = httpx.Client(
        base_url=live.http, headers={"Authorization": f"Bearer {live.admin}"}, timeout=30
    )

    @settings(HYPOTHESIS_SETTINGS, max_examples=8 * len(cases))
    @given(
        case=st.sampled_from(cases),
        values=st.lists(UNICODE_TEXT, min_size=8, max_size=8),
        keep=st.lists(st.booleans(), min_size=8, max_size=8),
        header=st.sampled_from(HEADER_NAMES),
    )
    def probe(
        case: tuple[str, str, list[str], list[str]],
        values: list[str],
        keep: list[bool],
        header: str,
    ) -> None:
        method, template, path_names, query_names = case
        path = template
        for i, name in enumerate(path_names):
            # Some path parameters name a real thing, so the query and header reach the code.
            value = existing.get(name, values[i]) if keep[i] else values[i]
            path = path.replace("{" + name + "}", quote(value, safe=""))
        query = {name: values[-1 - i] for i, name in enumerate(query_names)}
        headers = {header: values[4].encode("utf-8")}
        r = client.request(
            method,
            path,
            params=query,
            headers=headers,
            # an SSE stream of an existing job ends after its final event
        )
        where = f"{method} {path} {query} {header}={values[4]!r}"
        if r.status_code >= 500:
            failures.append(f"{where}: {r.status_code} {r.text[:200]}")
        elif (
            method != "HEAD"
            and r.status_code >= 400
            and r.headers.get("content-type", "").startswith("application/json")
        ):
            try:
                body = r.json()
            except ValueError:
                body = {"unparsable": r.text[:200]}
            if not isinstance(body.get("code"), int) or "x-mobiletrain-error-code" not in r.headers:
                failures.append(f"{where}: {r.status_code} without the catalog shape: {body}")

    try:
        probe()
    finally:
        client.close()
    assert not failures, "\n".join(failures[:20])
