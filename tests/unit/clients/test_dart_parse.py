"""Every .dart file of the Flutter client parses (tree-sitter Dart grammar; no Dart SDK here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dart_source import DART_ROOT, dart_files, parse, parser, syntax_errors


def test_the_dart_sources_are_there() -> None:
    files = {p.relative_to(DART_ROOT).as_posix() for p in dart_files()}
    for expected in (
        "mobiletrain_client/lib/mobiletrain_client.dart",
        "mobiletrain_client/lib/src/client.dart",
        "mobiletrain_client/lib/src/grpc/grpc_transport.dart",
        "mobiletrain_client/lib/src/rest/rest_transport.dart",
        "mobiletrain_client/lib/src/upload_queue.dart",
        "mobiletrain_client/lib/src/model_manager.dart",
        "mobiletrain_client/lib/src/inference.dart",
        "mobiletrain_client/lib/src/on_device_training.dart",
        "example/lib/main.dart",
    ):
        assert expected in files


@pytest.mark.parametrize("path", dart_files(), ids=lambda p: p.relative_to(DART_ROOT).as_posix())
def test_dart_file_parses(path: Path) -> None:
    errors = syntax_errors(parse(path))
    assert not errors, f"{path.relative_to(DART_ROOT)}:\n" + "\n".join(errors)


def test_the_parser_rejects_broken_dart() -> None:
    # The check is only worth something if the grammar does find errors.
    assert syntax_errors(parser().parse(b"class A { void f() { final x = ; } }"))
    assert not syntax_errors(parser().parse(b"sealed class S {}\nfinal r = (1, 'a');\n"))
