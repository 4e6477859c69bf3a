"""A folder of short-lived files: the accepted updates of open federated rounds."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from mobiletrain.federated.ports import UpdateSpool

_KEY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class LocalUpdateSpool(UpdateSpool):
    """One file per key under ``root``; writes are atomic (temp file, then rename).

    No fsync: the spool must survive a server process restart (the page cache does), not a
    power cut; skipping it keeps a round of large updates cheap.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        # Keys are built by the server from ids, never from client strings; still refuse
        # anything that could leave the folder.
        if not _KEY.match(key) or ".." in key.split("/"):
            raise ValueError(f"bad spool key {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes | bytearray, meta: dict[str, Any]) -> None:
        """Write one file (meta length, meta JSON, data), atomically: a temp file renamed."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps(meta).encode()
        tmp = path.with_name(path.name + _TMP_SUFFIX)
        with open(tmp, "wb") as fh:
            fh.write(len(header).to_bytes(4, "little"))
            fh.write(header)
            fh.write(data)
        os.replace(tmp, path)

    def get(self, key: str) -> tuple[bytes, dict[str, Any]]:
        """The bytes and meta of ``key``; KeyError when absent."""
        try:
            raw = self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None
        size = int.from_bytes(raw[:4], "little")
        return raw[4 + size :], json.loads(raw[4 : 4 + size])

    def list(self, prefix: str) -> list[str]:
        """Complete entries in the folder ``prefix`` (a half-written one has a temp name)."""
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        base = prefix.rstrip("/")
        return sorted(
            f"{base}/{p.name}"
            for p in folder.iterdir()
            if p.is_file() and not p.name.endswith(_TMP_SUFFIX)
        )

    def delete_prefix(self, prefix: str) -> None:
        """Delete the folder ``prefix`` (or the file)."""
        path = self._path(prefix.rstrip("/"))
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


_TMP_SUFFIX = ".tmp"
