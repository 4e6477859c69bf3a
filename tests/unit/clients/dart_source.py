"""Reading the Dart client's sources without a Dart SDK: tree-sitter parses, comments dropped.

The Dart SDK cannot be installed on the machines that run ``make test``, so the checks on
``clients/dart`` parse the files with the tree-sitter Dart grammar from PyPI instead.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import tree_sitter
import tree_sitter_dart

ROOT = Path(__file__).resolve().parents[3]
DART_ROOT = ROOT / "clients" / "dart"
PACKAGE = DART_ROOT / "mobiletrain_client"

_BLANKED = {"comment", "documentation_comment", "string_literal"}


@cache
def parser() -> tree_sitter.Parser:
    """A parser for the Dart grammar."""
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_dart.language()))


def dart_files() -> list[Path]:
    """Every .dart file of the package and the example app (generated code excluded)."""
    return sorted(p for p in DART_ROOT.rglob("*.dart") if "generated" not in p.parts)


def parse(path: Path) -> tree_sitter.Tree:
    """The syntax tree of one file."""
    return parser().parse(path.read_bytes())


def syntax_errors(tree: tree_sitter.Tree) -> list[str]:
    """``line:column`` of every ERROR or MISSING node, with the text around it."""
    found: list[str] = []
    source = tree.root_node.text or b""
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            row, col = node.start_point
            snippet = source[node.start_byte : node.start_byte + 60].decode(errors="replace")
            found.append(
                f"{row + 1}:{col + 1} {'missing' if node.is_missing else 'error'}: {snippet!r}"
            )
            continue
        if node.has_error:
            stack.extend(node.children)
    return found


def code_only(path: Path) -> str:
    """The file's text with comments and string literals blanked (same length and lines).

    String interpolations (``'${pb.Foo}'``) are blanked too; code inside strings is not checked.
    """
    data = bytearray(path.read_bytes())
    stack = [parse(path).root_node]
    while stack:
        node = stack.pop()
        if node.type in _BLANKED:
            for i in range(node.start_byte, node.end_byte):
                if data[i] not in (0x0A, 0x0D):
                    data[i] = 0x20
            continue
        stack.extend(node.children)
    return data.decode()
