"""The UploadSamples request stream as a lazy sequence of samples.

:func:`incoming_samples` turns the client's request messages into
:class:`~mobiletrain.core.services.IncomingSample` objects one at a time, as the messages arrive,
so ``DatasetService.upload`` validates and stores the first samples while later ones are still
on the wire, and at most one chunked sample is held in memory.

The rules are those of ``datasets.proto``:

* per-sample problems (bad SHA-256, empty or oversized header, unfinished sample at the end of
  the stream) reject that sample: it is yielded with ``error`` set and the stream goes on;
* a malformed stream (project missing or changed, message without payload, chunk that does not
  continue the open sample, too many bytes, a new sample while one is open) raises
  :class:`~mobiletrain.core.errors.MobiletrainError` and fails the whole call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from mobiletrain._proto.mobiletrain.v1 import datasets_pb2
from mobiletrain.api.grpc import serde
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.services import IncomingSample


def _stream_error(code: ErrorCode, message: str) -> MobiletrainError:
    return MobiletrainError(code, message)


def _sha_mismatch(expected: str, actual: str) -> MobiletrainError | None:
    """INCOMPLETE_SAMPLE when a declared SHA-256 does not match the bytes, else None."""
    if expected and expected.lower() != actual:
        return MobiletrainError(
            ErrorCode.INCOMPLETE_SAMPLE,
            f"sha256 mismatch: declared {expected.lower()}, received {actual}",
        )
    return None


class _ChunkedSample:
    """A sample announced by a header whose bytes are still arriving."""

    def __init__(self, header: datasets_pb2.SampleHeader) -> None:
        self.header = header
        self.size = int(header.size)
        self.received = bytearray()
        self.digest = hashlib.sha256()

    @property
    def client_id(self) -> str:
        """The client id of the header."""
        return str(self.header.client_id)

    @property
    def complete(self) -> bool:
        """True once ``size`` bytes arrived."""
        return len(self.received) == self.size

    def add(self, chunk: datasets_pb2.SampleChunk) -> None:
        """Append a chunk, or fail the stream if it does not continue this sample exactly."""
        have = len(self.received)
        if chunk.client_id != self.client_id:
            raise _stream_error(
                ErrorCode.INCOMPLETE_SAMPLE,
                f"chunk for client_id {chunk.client_id!r} while sample {self.client_id!r} is "
                f"unfinished ({have} of {self.size} bytes)",
            )
        if chunk.offset != have:
            raise _stream_error(
                ErrorCode.INCOMPLETE_SAMPLE,
                f"chunk of sample {self.client_id!r} has offset {chunk.offset}; expected {have}",
            )
        if not chunk.data:
            raise _stream_error(
                ErrorCode.INCOMPLETE_SAMPLE, f"empty chunk for sample {self.client_id!r}"
            )
        if have + len(chunk.data) > self.size:
            raise _stream_error(
                ErrorCode.INCOMPLETE_SAMPLE,
                f"sample {self.client_id!r} got more than the {self.size} bytes its header "
                "declared",
            )
        self.received += chunk.data
        self.digest.update(chunk.data)

    def finish(self) -> IncomingSample:
        """The complete sample (rejected if its SHA-256 does not match)."""
        error = _sha_mismatch(self.header.sha256, self.digest.hexdigest())
        data = b"" if error else bytes(self.received)
        self.received = bytearray()
        return serde.sample_header_from_proto(self.header, data, error)

    def unfinished(self) -> IncomingSample:
        """The sample rejected because the stream ended before all its bytes came."""
        error = MobiletrainError(
            ErrorCode.INCOMPLETE_SAMPLE,
            f"the stream ended after {len(self.received)} of {self.size} bytes",
        )
        self.received = bytearray()
        return serde.sample_header_from_proto(self.header, b"", error)


def incoming_samples(
    requests: Iterable[datasets_pb2.UploadSamplesRequest], project: str, max_sample_bytes: int
) -> Iterator[IncomingSample]:
    """Yield one sample per inline sample or header, in arrival order, reading lazily.

    ``project`` is the project of the first message; every message must name it or leave it
    empty. ``max_sample_bytes`` is the server limit a header's ``size`` is checked against
    before any chunk is accepted.
    """
    open_sample: _ChunkedSample | None = None
    skipping: str | None = None  # client_id of a header rejected at once; its chunks are dropped
    for request in requests:
        if request.project and request.project != project:
            raise _stream_error(
                ErrorCode.INVALID_ARGUMENT,
                f"all messages must name the same project: got {request.project!r} after "
                f"{project!r}",
            )
        payload = request.WhichOneof("payload")
        if payload is None:
            raise _stream_error(ErrorCode.INVALID_ARGUMENT, "a message carries no payload")

        if payload == "chunk":
            chunk = request.chunk
            if open_sample is None:
                if skipping is not None and chunk.client_id == skipping:
                    continue
                raise _stream_error(
                    ErrorCode.INCOMPLETE_SAMPLE,
                    f"chunk for client_id {chunk.client_id!r} without a preceding header",
                )
            open_sample.add(chunk)
            if open_sample.complete:
                finished, open_sample = open_sample, None
                yield finished.finish()
            continue

        if open_sample is not None:
            raise _stream_error(
                ErrorCode.INCOMPLETE_SAMPLE,
                f"a new sample started while sample {open_sample.client_id!r} is unfinished "
                f"({len(open_sample.received)} of {open_sample.size} bytes)",
            )
        skipping = None

        if payload == "inline_batch":
            for inline in request.inline_batch.samples:
                sample = serde.incoming_sample_from_proto(inline)
                error = _sha_mismatch(inline.sha256, hashlib.sha256(sample.data).hexdigest())
                if error is not None:
                    sample = IncomingSample(sample.client_id, sample.label, b"", error)
                yield sample
            continue

        header = request.header
        rejection: MobiletrainError | None = None
        if header.size == 0:
            rejection = MobiletrainError(ErrorCode.EMPTY_SAMPLE, "header declares size 0")
        elif header.size < 0:
            rejection = MobiletrainError(
                ErrorCode.INVALID_ARGUMENT, f"header declares a negative size {header.size}"
            )
        elif header.size > max_sample_bytes:
            rejection = MobiletrainError(
                ErrorCode.SAMPLE_TOO_LARGE,
                f"sample is {header.size} bytes; the limit is {max_sample_bytes}",
            )
        if rejection is not None:
            skipping = header.client_id
            yield serde.sample_header_from_proto(header, b"", rejection)
        else:
            open_sample = _ChunkedSample(header)

    if open_sample is not None:
        yield open_sample.unfinished()
