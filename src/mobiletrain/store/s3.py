"""Blobs on S3-compatible object storage (AWS S3, MinIO, Ceph RGW, R2 ...), through boto3.

URL: ``s3://bucket/prefix?endpoint_url=http://127.0.0.1:9000&region=us-east-1&addressing_style=path``.
Every query parameter is optional; without ``endpoint_url`` boto3 uses AWS (or the standard
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` variables). Credentials never go in the URL (it
is passed to worker processes on their command line): boto3's usual chain supplies them
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile, an instance role ...).

Layout: one object per blob, ``<prefix>/blobs/<sha256[:2]>/<sha256>``. The local store packs
blobs because creating and fsyncing one file per small sample is what limits ingest on a disk;
an object store has no such per-file cost, while packs there would need either S3's missing
append (buffering uploads in memory until a pack is full — a durability hole that ``sync`` would
close only by writing many tiny packs anyway) or multipart assembly with an index object to keep
consistent across replicas. One object per blob keeps every write a single idempotent PUT (the
key is the content's hash, so replicas writing the same blob at once cannot conflict), lets any
number of API replicas and workers write without coordination, and needs no index: existence is
a HEAD. Reads of many blobs for training run concurrently (:meth:`S3BlobStore.get_many`); byte
ranges of model files are ranged GETs. The two-hex-digit level only makes listings browsable;
S3 itself scales request rates per prefix, which random hex prefixes spread well.
"""

from __future__ import annotations

import errno
import hashlib
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

from mobiletrain.core.ports import BlobDamaged, BlobStore

if TYPE_CHECKING:
    from mobiletrain.store.compaction import CompactionReport

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_QUERY_KEYS = ("endpoint_url", "region", "addressing_style")


def _is_missing(exc: Exception) -> bool:
    """True for the S3 errors that mean "no such object"."""
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("404", "NoSuchKey", "NotFound") or status == 404


class S3BlobStore(BlobStore):
    """Content-addressed blobs as objects ``<prefix>/blobs/<aa>/<sha256>`` in one bucket."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: str | None = None,
        max_connections: int = 64,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.addressing_style = addressing_style
        self._max_connections = max_connections
        if client is None:
            import boto3
            from botocore.config import Config

            s3_options: dict[str, Any] = {}
            if addressing_style:
                s3_options["addressing_style"] = addressing_style
            client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                config=Config(
                    # The gRPC and HTTP servers call the store from many threads at once.
                    max_pool_connections=max_connections,
                    retries={"mode": "standard", "max_attempts": 5},
                    s3=s3_options or None,
                ),
            )
        self.client = client

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        """Open ``s3://bucket/prefix?endpoint_url=...&region=...&addressing_style=path``."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        unknown = sorted(set(query) - set(_QUERY_KEYS))
        if unknown:
            raise ValueError(
                f"unknown s3 URL parameters {unknown}; allowed: {', '.join(_QUERY_KEYS)}"
            )
        return cls(
            parsed.netloc,
            parsed.path,
            endpoint_url=query.get("endpoint_url"),
            region=query.get("region"),
            addressing_style=query.get("addressing_style"),
        )

    def key(self, sha256: str) -> str:
        """Object key of a blob."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise KeyError(sha256)  # never build a key from anything but a digest
        base = f"blobs/{sha256[:2]}/{sha256}"
        return f"{self.prefix}/{base}" if self.prefix else base

    # -- writes ------------------------------------------------------------------------------
    def put(self, data: bytes) -> str:
        """Store ``data`` as one object (a PUT of the same key again is harmless)."""
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(sha256), Body=data)
        except Exception as exc:
            # The BlobStore contract: a failed write is an OSError. A PUT is atomic, so nothing
            # of a failed one is visible.
            if isinstance(exc, OSError):
                raise
            raise OSError(errno.EIO, f"S3 PUT failed: {type(exc).__name__}: {exc}") from exc
        return sha256

    def sync(self) -> None:
        """Nothing to do: a PUT is durable once it returns."""

    def delete_unreferenced(
        self,
        referenced: Callable[[], set[str]],
        *,
        grace_s: float = 300.0,
        stop: threading.Event | None = None,
    ) -> CompactionReport:
        """Delete every blob object not in ``referenced()`` (the S3 form of compaction).

        An object is deleted only when it is unreferenced in two reads of ``referenced()``
        ``grace_s`` apart and its last PUT is older than the run's start minus the grace (every
        ``put`` re-PUTs, so a re-upload of the same bytes during the run keeps its object). The
        one window left: a re-upload whose PUT lands between the HEAD and the DELETE of that
        object and whose row commits after the second read.
        """
        from mobiletrain.store.compaction import CompactionReport

        started = time.monotonic()
        report = CompactionReport()
        cutoff = math.floor(time.time()) - 1 - grace_s  # LastModified has 1 s resolution
        live = referenced()
        base = f"{self.prefix}/blobs/" if self.prefix else "blobs/"
        candidates: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=base
        ):
            for obj in page.get("Contents", []):
                sha = str(obj["Key"]).rsplit("/", 1)[-1]
                if sha not in live:
                    candidates[sha] = int(obj["Size"])
        report.packs_scanned = len(candidates)
        if candidates and grace_s > 0 and stop is not None and stop.wait(grace_s):
            report.skipped = "stopped during the grace period"
            return report
        if candidates and grace_s > 0 and stop is None:
            time.sleep(grace_s)
        live = referenced() if candidates else live
        for sha, size in sorted(candidates.items()):
            if sha in live:
                continue
            try:
                modified = self._head(sha)["LastModified"].timestamp()
            except KeyError:
                continue
            if modified >= cutoff:
                continue  # written again since the run started: someone uses it
            self.client.delete_object(Bucket=self.bucket, Key=self.key(sha))
            report.objects_deleted += 1
            report.records_dropped += 1
            report.bytes_before += size
        report.seconds = time.monotonic() - started
        return report

    def close(self) -> None:
        """Close the client's connection pool."""
        close = getattr(self.client, "close", None)
        if close is not None:
            close()

    # -- reads -------------------------------------------------------------------------------
    def _head(self, sha256: str) -> dict[str, Any]:
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=self.key(sha256)))
        except Exception as exc:
            if _is_missing(exc):
                raise KeyError(sha256) from None
            raise

    def exists(self, sha256: str) -> bool:
        """True when the object is there (a HEAD request)."""
        try:
            self._head(sha256)
        except KeyError:
            return False
        return True

    def size(self, sha256: str) -> int:
        """Size in bytes (a HEAD request)."""
        return int(self._head(sha256)["ContentLength"])

    def get(self, sha256: str) -> bytes:
        """Read a whole blob and check its digest (a damaged object never yields wrong bytes)."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))
        except Exception as exc:
            if _is_missing(exc):
                raise KeyError(sha256) from None
            raise
        data: bytes = response["Body"].read()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BlobDamaged(sha256, "object bytes do not match the key")
        return data

    def get_many(self, sha256s: Sequence[str]) -> list[bytes]:
        """Read many blobs with concurrent GETs (training loads a whole dataset at once)."""
        if len(sha256s) <= 1:
            return [self.get(s) for s in sha256s]
        workers = min(len(sha256s), max(1, self._max_connections // 2))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-get") as pool:
            return list(pool.map(self.get, sha256s))

    def read_range(
        self, sha256: str, start: int, length: int, chunk_size: int = 262144
    ) -> Iterator[bytes]:
        """Yield ``[start, start + length)`` of a blob from one ranged GET, in chunks."""
        if start < 0 or length < 0:
            raise ValueError("range outside the blob")
        if length == 0:
            if start > self.size(sha256):
                raise ValueError("range outside the blob")
            return
        try:
            response = self.client.get_object(
                Bucket=self.bucket,
                Key=self.key(sha256),
                Range=f"bytes={start}-{start + length - 1}",
            )
        except Exception as exc:
            if _is_missing(exc):
                raise KeyError(sha256) from None
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code == "InvalidRange":  # start at or past the end
                raise ValueError("range outside the blob") from None
            raise
        body = response["Body"]
        try:
            # S3 clips a range that runs past the end; the total in Content-Range tells.
            match = _CONTENT_RANGE.fullmatch(str(response.get("ContentRange", "")))
            total = int(match.group(3)) if match else int(response["ContentLength"])
            if start + length > total:
                raise ValueError("range outside the blob")
            remaining = length
            for chunk in body.iter_chunks(chunk_size):
                if not chunk:
                    continue
                chunk = chunk[:remaining]
                remaining -= len(chunk)
                yield chunk
                if remaining <= 0:
                    break
            if remaining > 0:
                raise BlobDamaged(sha256, "truncated")
        finally:
            body.close()
