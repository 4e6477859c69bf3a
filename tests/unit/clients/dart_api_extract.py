"""Writes ``dart_api.json``: the public API of the Dart client's pinned dependencies.

Run by hand when a pubspec version changes, with git checkouts of the upstream repositories::

    python tests/unit/clients/dart_api_extract.py http=PATH image=PATH grpc=PATH \\
        protobuf=PATH tflite_flutter=PATH

Each library a pubspec pins is read at the git ref of that version (``PINNED``) with the same
tree-sitter reader the checks use, following ``export`` directives inside the package (with
``show``/``hide``); the table keeps top-level names and each public class's members (a class's
own members plus those of the package's superclasses it extends or mixes in).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from dart_names import API_FILE, Library, read_library

# package -> (pubspec constraint, git ref, folder of the package in its repository, libraries)
PINNED: dict[str, tuple[str, str, str, list[str]]] = {
    "http": ("^1.5.0", "http-v1.5.0", "pkgs/http", ["http.dart"]),
    "image": ("^4.5.4", "4.5.4", "", ["image.dart"]),
    "grpc": ("^5.1.0", "v5.1.0", "", ["grpc.dart"]),
    "protobuf": ("^6.0.0", "protobuf-v6.0.0", "protobuf", ["protobuf.dart"]),
    "tflite_flutter": ("^0.12.1", "HEAD", "", ["tflite_flutter.dart"]),
}

# Lower-case top-level functions of libraries the table does not pin (Dart SDK, Flutter,
# plugins): these are taken as they are; capitalised names of those libraries are not checked.
OPEN_FUNCTIONS: dict[str, list[str]] = {
    "dart:core": ["print", "identical", "identityHashCode"],
    "dart:async": ["unawaited", "scheduleMicrotask", "runZoned", "runZonedGuarded"],
    "dart:math": ["min", "max", "sqrt", "exp", "log", "pow", "sin", "cos", "atan2"],
    "dart:convert": ["jsonEncode", "jsonDecode", "base64Encode", "base64Decode", "base64UrlEncode"],
    "dart:io": ["exit", "sleep"],
    "dart:isolate": [],
    "dart:typed_data": [],
    "package:flutter/foundation.dart": ["compute", "debugPrint", "kDebugMode", "listEquals"],
    "package:flutter/material.dart": [
        "runApp",
        "showDialog",
        "showModalBottomSheet",
        "showDatePicker",
        "debugPrint",
    ],
    "package:flutter/widgets.dart": ["runApp", "debugPrint"],
    "package:flutter/services.dart": [],
    "package:path_provider/path_provider.dart": [
        "getApplicationDocumentsDirectory",
        "getApplicationSupportDirectory",
        "getTemporaryDirectory",
    ],
    # Plugins of the audio and sensor tasks (record: classes only; sensors_plus 6.1 streams).
    "package:record/record.dart": [],
    "package:sensors_plus/sensors_plus.dart": [
        "accelerometerEventStream",
        "userAccelerometerEventStream",
        "gyroscopeEventStream",
        "magnetometerEventStream",
        "barometerEventStream",
    ],
    # The package's unit tests are name-checked too.
    "package:flutter_test/flutter_test.dart": [
        "addTearDown",
        "closeTo",
        "contains",
        "containsAll",
        "containsAllInOrder",
        "endsWith",
        "equals",
        "everyElement",
        "expect",
        "expectLater",
        "fail",
        "greaterThan",
        "greaterThanOrEqualTo",
        "group",
        "hasLength",
        "inInclusiveRange",
        "isA",
        "isNot",
        "lessThan",
        "lessThanOrEqualTo",
        "orderedEquals",
        "predicate",
        "setUp",
        "setUpAll",
        "startsWith",
        "tearDown",
        "tearDownAll",
        "test",
        "testWidgets",
        "throwsA",
    ],
}

# Members of Flutter/SDK superclasses that app classes extend (so that calls on `this` in a
# widget or a ChangeNotifier are still checked).
OPEN_CLASSES: dict[str, list[str]] = {
    "ChangeNotifier": [
        "addListener",
        "removeListener",
        "notifyListeners",
        "dispose",
        "hasListeners",
    ],
    "State": [
        "setState",
        "mounted",
        "context",
        "widget",
        "initState",
        "dispose",
        "didChangeDependencies",
        "didUpdateWidget",
        "build",
        "deactivate",
        "activate",
        "reassemble",
    ],
    "StatelessWidget": ["build", "key", "createElement"],
    "StatefulWidget": ["createState", "key", "createElement"],
}


def _show(repo: Path, ref: str, path: str) -> bytes | None:
    done = subprocess.run(
        ["git", "-C", str(repo), "show", f"{ref}:{path}"], capture_output=True, check=False
    )
    return done.stdout if done.returncode == 0 else None


def _collect(
    repo: Path, ref: str, lib_dir: str, rel: str, seen: set[str]
) -> tuple[set[str], dict[str, set[str]]]:
    if rel in seen:
        return set(), {}
    seen.add(rel)
    data = _show(repo, ref, f"{lib_dir}/{rel}" if lib_dir else rel)
    if data is None:
        return set(), {}
    lib: Library = read_library(Path(rel), data)
    names = {n for n in lib.top if not n.startswith("_")}
    classes = {
        n: {m for m in c.members if not m.startswith("_")} | {""}
        for n, c in lib.classes.items()
        if not n.startswith("_") and not n.startswith("<")
    }
    supers = {n: c.supers for n, c in lib.classes.items()}
    for imp in lib.imports:
        if not imp.export or (
            imp.uri.startswith(("dart:", "package:"))
            and not imp.uri.startswith("package:" + lib_dir.split("/")[-1])
        ):
            continue
        target = (
            imp.uri.split("/", 1)[1]
            if imp.uri.startswith("package:")
            else str((Path(rel).parent / imp.uri).as_posix())
        )
        sub_names, sub_classes = _collect(repo, ref, lib_dir, _normal(target), seen)
        keep = {n for n in sub_names if (imp.show is None or n in imp.show) and n not in imp.hide}
        names |= keep
        classes.update({n: m for n, m in sub_classes.items() if n in keep})
    for n, sups in supers.items():
        for s in sups:
            if n in classes and s in classes:
                classes[n] |= classes[s]
    return names, classes


def _normal(path: str) -> str:
    parts: list[str] = []
    for p in path.split("/"):
        if p == "..":
            parts.pop()
        elif p not in ("", "."):
            parts.append(p)
    return "/".join(parts)


def main(argv: list[str]) -> None:
    repos = dict(a.split("=", 1) for a in argv)
    packages: dict[str, object] = {}
    for package, (constraint, ref, folder, libraries) in PINNED.items():
        repo = Path(repos[package])
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", ref], capture_output=True, text=True, check=True
        ).stdout.strip()
        lib_dir = f"{folder}/lib" if folder else "lib"
        out: dict[str, object] = {}
        for library in libraries:
            names, classes = _collect(repo, ref, lib_dir, library, set())
            out[f"package:{package}/{library}"] = {
                "functions": sorted(n for n in names if n not in classes),
                "classes": {n: sorted(classes[n]) for n in sorted(classes) if n in names},
            }
        packages[package] = {
            "constraint": constraint,
            "ref": ref,
            "commit": commit,
            "libraries": out,
        }
    table = {
        "packages": packages,
        "open_functions": OPEN_FUNCTIONS,
        "open_classes": OPEN_CLASSES,
    }
    API_FILE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
