"""Name checks for the Dart client without a Dart SDK: every called name must exist.

The Dart package cannot be compiled here, so a call to a helper that does not exist
(``_headers(...)`` on ``this``, ``isJpeg(...)`` from an imported library) would only show up in
the app developer's ``flutter analyze``. This module reads the sources with tree-sitter and
resolves, for every call:

* an unqualified call ``name(...)``: a name declared in the same file, a member of the
  enclosing class or of its superclasses (project classes, or external ones listed in
  ``dart_api.json``), or a name exported by a library the file imports without a prefix;
* ``this.name(...)``: a member of the enclosing class or its superclasses;
* ``prefix.Name(...)`` / ``prefix.Name.member(...)`` through an import prefix
  (``http.AbortableRequest``), and ``Class.member(...)`` on a project class or a listed
  dependency class (``ModelFormat.tryFromWireName``, ``Interpreter.fromFile``).

Names of dependencies come from ``dart_api.json``: the public API of each pinned dependency
(the versions in the pubspecs), extracted from the upstream sources by
``dart_api_extract.py``. Libraries not listed there (the Dart SDK, Flutter, plugins such as
camera) are *open*: their capitalised names (classes) are taken on trust, their lower-case
top-level functions must be in the small ``open_functions`` lists of the same file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import tree_sitter
from dart_source import DART_ROOT, PACKAGE, parser

API_FILE = Path(__file__).with_name("dart_api.json")
EXAMPLE = DART_ROOT / "example"
PROJECT_PACKAGES = {"mobiletrain_client": PACKAGE / "lib", "mobiletrain_example": EXAMPLE / "lib"}
OBJECT_MEMBERS = {"toString", "hashCode", "runtimeType", "noSuchMethod", "=="}
ENUM_MEMBERS = {"values", "name", "index", "compareTo"}


@cache
def api() -> dict[str, object]:
    """The pinned dependency table (see ``dart_api.json``)."""
    data: dict[str, object] = json.loads(API_FILE.read_text())
    return data


@dataclass
class Import:
    uri: str
    prefix: str | None
    show: set[str] | None
    hide: set[str]
    export: bool


@dataclass
class ClassInfo:
    name: str
    members: set[str] = field(default_factory=set)
    supers: list[str] = field(default_factory=list)  # extends, with (inherited code)
    kind: str = "class"


@dataclass
class Library:
    path: Path
    imports: list[Import] = field(default_factory=list)
    top: set[str] = field(default_factory=set)
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    declared: set[str] = field(default_factory=set)  # every name declared anywhere in the file


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        try:
            shown = self.path.relative_to(DART_ROOT).as_posix()
        except ValueError:
            shown = self.path.name
        return f"{shown}:{self.line}: {self.message}"


def _text(node: tree_sitter.Node | None) -> str:
    return (node.text or b"").decode() if node is not None else ""


def _children(node: tree_sitter.Node, *types: str) -> list[tree_sitter.Node]:
    return [c for c in node.children if c.type in types]


def _walk(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


# -- reading declarations -----------------------------------------------------------------------

_DECLARING_PARENTS = {
    "function_signature",
    "getter_signature",
    "setter_signature",
    "formal_parameter",
    "initialized_identifier",
    "initialized_variable_definition",
    "static_final_declaration",
    "enum_constant",
    "class_definition",
    "mixin_declaration",
    "enum_declaration",
    "extension_declaration",
    "extension_type_declaration",
    "type_alias",
    "constructor_param",
    "super_formal_parameter",
    "catch_parameters",
    "constant_pattern",  # pattern variables: final (a, b) = ...; for (final (i, e) in ...)
    "variable_pattern",
    "identifier_list",
    "declared_identifier",
    "factory_constructor_signature",
    "redirecting_factory_constructor_signature",
    "constant_constructor_signature",
    "constructor_signature",
    "operator_signature",
}


_NAMED_MEMBERS = (
    "function_signature",
    "getter_signature",
    "setter_signature",
    "initialized_identifier",
    "static_final_declaration",
)


def _member_name(node: tree_sitter.Node) -> list[str]:
    """Names a class-body declaration introduces (methods, getters, fields, constructors)."""
    names: list[str] = []
    for n in _walk(node):
        if n.type in ("function_body", "block"):
            continue
        if n.type in _NAMED_MEMBERS:
            ident = _children(n, "identifier")
            if ident:
                names.append(_text(ident[0]))
        elif n.type in (
            "constructor_signature",
            "factory_constructor_signature",
            "constant_constructor_signature",
            "redirecting_factory_constructor_signature",
        ):
            idents = _children(n, "identifier")
            if len(idents) >= 2:
                names.append(_text(idents[1]))  # Name.named
            elif idents:
                names.append("")  # the unnamed constructor
    return names


def _class_body_members(body: tree_sitter.Node) -> set[str]:
    members: set[str] = set()
    for child in body.children:
        if child.type in ("declaration", "method_signature"):
            members.update(n for n in _member_name(child) if n)
        elif child.type == "enum_constant":
            members.update(_text(i) for i in _children(child, "identifier"))
    return members


def _type_names(node: tree_sitter.Node | None) -> list[str]:
    if node is None:
        return []
    return [_text(n) for n in _walk(node) if n.type == "type_identifier"][:1] if node else []


def read_library(path: Path, source: bytes | None = None) -> Library:
    """Declarations and imports of one Dart file (``source`` overrides the file's text)."""
    data = path.read_bytes() if source is None else source
    tree = parser().parse(data)
    lib = Library(path)
    root = tree.root_node
    for node in root.children:
        if node.type == "import_or_export":
            lib.imports.append(_read_import(node))
        elif node.type in (
            "class_definition",
            "mixin_declaration",
            "enum_declaration",
            "extension_declaration",
            "extension_type_declaration",
        ):
            info = _read_class(node)
            if info.name:
                lib.classes[info.name] = info
                lib.top.add(info.name)
            elif node.type == "extension_declaration":
                lib.classes[f"<extension@{node.start_point[0]}>"] = info
        elif node.type == "type_alias":
            ids = [c for c in node.children if c.type in ("type_identifier", "identifier")]
            if ids:
                lib.top.add(_text(ids[0]))
        elif node.type in ("function_signature", "getter_signature", "setter_signature"):
            ident = _children(node, "identifier")
            if ident:
                lib.top.add(_text(ident[0]))
        elif node.type in (
            "top_level_variable_declaration",
            "static_final_declaration_list",
            "initialized_identifier_list",
        ) or node.type.endswith("declaration"):
            for n in _walk(node):
                if n.type in ("initialized_identifier", "static_final_declaration"):
                    ident = _children(n, "identifier")
                    if ident:
                        lib.top.add(_text(ident[0]))
    for n in _walk(root):
        if n.type not in _DECLARING_PARENTS or n.type == "constructor_param":
            continue
        idents = _children(n, "identifier")
        if not idents:
            continue
        if n.type in ("catch_parameters", "identifier_list"):
            lib.declared.update(_text(i) for i in idents)
        elif n.type == "formal_parameter":
            lib.declared.add(_text(idents[-1]))  # `Type name` or `name`
        else:
            lib.declared.add(_text(idents[0]))  # the declared name, not the initializer
    return lib


def _read_import(node: tree_sitter.Node) -> Import:
    spec = next(_walk(node))
    export = any(n.type == "library_export" for n in node.children)
    uri = ""
    prefix: str | None = None
    show: set[str] | None = None
    hide: set[str] = set()
    after_as = False
    for n in _walk(spec):
        if n.type == "uri" and not uri:
            uri = _text(n).strip("'\"")
        elif n.type == "as":
            after_as = True
        elif n.type == "identifier" and after_as and prefix is None and n.parent is not None:
            if n.parent.type != "combinator":
                prefix = _text(n)
        elif n.type == "combinator":
            names = {_text(i) for i in _children(n, "identifier")}
            if n.children and n.children[0].type == "show":
                show = names
            else:
                hide |= names
    return Import(uri, prefix, show, hide, export)


def _read_class(node: tree_sitter.Node) -> ClassInfo:
    name_node = next((c for c in node.children if c.type == "identifier"), None)
    info = ClassInfo(_text(name_node), kind=node.type)
    for child in node.children:
        if child.type == "superclass":
            info.supers.extend(_text(n) for n in child.children if n.type == "type_identifier")
            for mixins in _children(child, "mixins"):
                info.supers.extend(_text(n) for n in mixins.children if n.type == "type_identifier")
        elif child.type == "mixins":
            info.supers.extend(_text(n) for n in child.children if n.type == "type_identifier")
        elif child.type in ("class_body", "enum_body", "extension_body"):
            info.members |= _class_body_members(child)
    if node.type == "enum_declaration":
        info.members |= ENUM_MEMBERS
    return info


# -- the project ------------------------------------------------------------------------------


class Project:
    """The Dart sources of the package and the example, with their imports resolved."""

    def __init__(self, overrides: dict[Path, bytes] | None = None) -> None:
        self.overrides = overrides or {}
        self._libs: dict[Path, Library] = {}

    def library(self, path: Path) -> Library | None:
        path = path.resolve()
        if path not in self._libs:
            if path not in self.overrides and not path.is_file():
                return None
            self._libs[path] = read_library(path, self.overrides.get(path))
        return self._libs[path]

    def resolve(self, uri: str, importer: Path) -> Path | str:
        """A project file, or the URI of an external library."""
        if uri.startswith("package:"):
            package, _, rest = uri[len("package:") :].partition("/")
            if package in PROJECT_PACKAGES:
                return (PROJECT_PACKAGES[package] / rest).resolve()
            return uri
        if uri.startswith("dart:"):
            return uri
        return (importer.parent / uri).resolve()

    def namespace(self, target: Path | str, seen: frozenset[Path] = frozenset()) -> Namespace:
        """What importing ``target`` brings into scope."""
        if isinstance(target, str):
            return external_namespace(target)
        lib = self.library(target)
        if lib is None or target in seen:
            return Namespace(names=set(), classes={}, missing=lib is None)
        ns = Namespace(names=set(lib.top), classes={n: (lib, c) for n, c in lib.classes.items()})
        for imp in lib.imports:
            if imp.export:
                sub = self.namespace(self.resolve(imp.uri, lib.path), seen | {target})
                ns.merge(sub.filtered(imp.show, imp.hide))
        return ns


@dataclass
class Namespace:
    names: set[str]
    classes: dict[str, tuple[Library | None, ClassInfo]]
    open_capitalised: bool = False  # a library whose classes are taken on trust
    missing: bool = False
    external_members: dict[str, set[str]] = field(default_factory=dict)

    def merge(self, other: Namespace) -> None:
        self.names |= other.names
        self.classes.update(other.classes)
        self.open_capitalised |= other.open_capitalised
        self.external_members.update(other.external_members)

    def filtered(self, show: set[str] | None, hide: set[str]) -> Namespace:
        def keep(name: str) -> bool:
            return (show is None or name in show) and name not in hide

        return Namespace(
            names={n for n in self.names if keep(n)},
            classes={n: c for n, c in self.classes.items() if keep(n)},
            open_capitalised=self.open_capitalised and show is None,
            external_members={n: m for n, m in self.external_members.items() if keep(n)},
        )

    def has(self, name: str) -> bool:
        if name in self.names or name in self.classes or name in self.external_members:
            return True
        return self.open_capitalised and name[:1].isupper()


def external_namespace(uri: str) -> Namespace:
    """A dependency's names from ``dart_api.json``; unlisted libraries are open."""
    table = api()
    pinned = table["packages"]
    assert isinstance(pinned, dict)
    for package in pinned.values():
        libraries = package["libraries"]
        if uri in libraries:
            lib = libraries[uri]
            members = {k: set(v) for k, v in lib["classes"].items()}
            return Namespace(names=set(lib["functions"]), classes={}, external_members=members)
    open_functions = table["open_functions"]
    assert isinstance(open_functions, dict)
    names = set(open_functions.get(uri, []))
    return Namespace(names=names, classes={}, open_capitalised=True)


# -- checking calls ---------------------------------------------------------------------------


def _enclosing_class(node: tree_sitter.Node) -> tree_sitter.Node | None:
    n = node.parent
    while n is not None:
        if n.type in (
            "class_definition",
            "mixin_declaration",
            "enum_declaration",
            "extension_declaration",
            "extension_type_declaration",
        ):
            return n
        n = n.parent
    return None


def _is_call(selectors: list[tree_sitter.Node]) -> bool:
    return bool(selectors) and any(c.type == "argument_part" for c in selectors[0].children)


def _selector_name(selector: tree_sitter.Node) -> str | None:
    for c in selector.children:
        if c.type in ("unconditional_assignable_selector", "conditional_assignable_selector"):
            ident = _children(c, "identifier")
            return _text(ident[0]) if ident else None
    return None


def _following_selectors(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    parent = node.parent
    if parent is None:
        return []
    out: list[tree_sitter.Node] = []
    started = False
    for c in parent.children:
        if c == node:
            started = True
            continue
        if started:
            if c.type != "selector":
                break
            out.append(c)
    return out


def check_library(project: Project, path: Path) -> list[Problem]:
    """Every call in one file whose name cannot be found."""
    lib = project.library(path)
    assert lib is not None, path
    source = project.overrides.get(path.resolve(), None)
    tree = parser().parse(path.read_bytes() if source is None else source)
    unprefixed = Namespace(names=set(), classes={})
    unprefixed.merge(external_namespace("dart:core"))
    prefixed: dict[str, Namespace] = {}
    for imp in lib.imports:
        if imp.export:
            continue
        ns = project.namespace(project.resolve(imp.uri, lib.path)).filtered(imp.show, imp.hide)
        if imp.prefix:
            prefixed.setdefault(imp.prefix, Namespace(names=set(), classes={})).merge(ns)
        else:
            unprefixed.merge(ns)
    own = Namespace(names=set(lib.top), classes={n: (lib, c) for n, c in lib.classes.items()})
    unprefixed.merge(own)
    problems: list[Problem] = []
    open_table = api()["open_classes"]
    assert isinstance(open_table, dict)
    open_classes = {k: set(v) for k, v in open_table.items()}

    def class_members(info: ClassInfo, owner: Library | None, depth: int = 0) -> set[str] | None:
        """Members of a class and its supers; None when a super is unknown (external)."""
        members = set(info.members) | OBJECT_MEMBERS
        for sup in info.supers:
            if depth > 8:
                return None
            if sup in unprefixed.classes:
                sup_lib, sup_info = unprefixed.classes[sup]
                sub = class_members(sup_info, sup_lib, depth + 1)
                if sub is None:
                    return None
                members |= sub
            elif sup in unprefixed.external_members:
                members |= unprefixed.external_members[sup]
            elif sup in open_classes:
                members |= open_classes[sup]
            else:
                return None
        return members

    for node in _walk(tree.root_node):
        if node.type not in ("identifier", "this"):
            continue
        parent = node.parent
        if parent is None or parent.type in (
            "label",
            "unconditional_assignable_selector",
            "conditional_assignable_selector",
            "type_identifier",
        ):
            continue
        selectors = _following_selectors(node)
        if not selectors:
            continue
        line = node.start_point[0] + 1
        name = _text(node)
        klass = _enclosing_class(node)
        info = (
            lib.classes.get(
                _text(next((c for c in klass.children if c.type == "identifier"), None))
            )
            if klass
            else None
        )
        if node.type == "this":
            member = _selector_name(selectors[0])
            if member and _is_call(selectors[1:]) and info is not None:
                members = class_members(info, lib)
                if members is not None and member not in members:
                    problems.append(
                        Problem(path, line, f"this.{member}(...): no such member of {info.name}")
                    )
            continue
        if _is_call(selectors):
            if name in lib.declared or unprefixed.has(name):
                continue
            if info is not None:
                members = class_members(info, lib)
                if members is None or name in members:
                    continue
                problems.append(
                    Problem(
                        path, line, f"{name}(...): not a member of {info.name} nor a name in scope"
                    )
                )
            else:
                problems.append(Problem(path, line, f"{name}(...): not declared or imported"))
            continue
        member = _selector_name(selectors[0])
        if member is None or (
            not _is_call(selectors[1:]) and not (len(selectors) > 2 and _is_call(selectors[2:]))
        ):
            continue
        if name in prefixed:
            ns = prefixed[name]
            if ns.missing or not (ns.names or ns.classes or ns.external_members):
                continue
            if not ns.has(member):
                problems.append(Problem(path, line, f"{name}.{member}: not in that library"))
                continue
            if len(selectors) > 2 and _is_call(selectors[2:]):
                sub = _selector_name(selectors[1])
                known = ns.external_members.get(member)
                if sub and known is not None and sub not in known:
                    problems.append(Problem(path, line, f"{name}.{member}.{sub}: no such member"))
            continue
        if name in lib.declared and name not in unprefixed.classes:
            continue  # a variable: its type is not tracked
        if name in unprefixed.classes:
            _, target = unprefixed.classes[name]
            if target.kind == "extension_declaration":
                continue
            members = class_members(target, None)
            if members is not None and member not in members:
                problems.append(
                    Problem(path, line, f"{name}.{member}(...): no such member of {name}")
                )
        elif name in unprefixed.external_members:
            known = unprefixed.external_members[name]
            if member not in known:
                problems.append(
                    Problem(path, line, f"{name}.{member}(...): no such member of {name}")
                )
    return problems


def checked_files() -> list[Path]:
    """The package's and the example app's library sources and the package's unit tests
    (generated code excluded)."""
    files = [
        *sorted((PACKAGE / "lib").rglob("*.dart")),
        *sorted((EXAMPLE / "lib").rglob("*.dart")),
        *sorted((PACKAGE / "test").rglob("*.dart")),
    ]
    return [p for p in files if "generated" not in p.parts]


def check_all(overrides: dict[Path, bytes] | None = None) -> list[Problem]:
    """Problems in every checked file (``overrides``: file texts to check instead)."""
    project = Project({p.resolve(): b for p, b in (overrides or {}).items()})
    problems: list[Problem] = []
    for path in checked_files():
        problems.extend(check_library(project, path))
    return problems
