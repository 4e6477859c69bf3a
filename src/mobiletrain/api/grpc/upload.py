"""The UploadSamples request stream as a lazy sequence of samples.

:func:`incoming_samples` turns the client's request messages into
:class:`~mobiletrain.core.services.IncomingSample` objects one at a time, as the messages arrive,
so ``DatasetService.upload`` validates and stores the first samples while later ones are still
on the wire. Chunked samples go through resumable upload sessions (``core.uploads``): every
chunk is stored as it arrives, so after a broken stream the client asks ``GetUploadOffset`` and
resends the header and only the missing chunks.

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
from mobiletrain.core.uploads import ResumableUploads, UploadStatus


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
    """A sample announced by a header whose bytes arrive into a resumable upload session."""

    def __init__(
        self, uploads: ResumableUploads, header: datasets_pb2.SampleHeader, status: UploadStatus
    ) -> None:
        assert status.session is not None
        self.uploads = uploads
        self.header = header
        self.session = status.session

    @property
    def client_id(self) -> str:
        """The client id of the header."""
        return str(self.header.client_id)

    @property
    def size(self) -> int:
        """Declared size."""
        return self.session.size

    @property
    def offset(self) -> int:
        """Bytes the server holds."""
        return self.session.offset

    @property
    def complete(self) -> bool:
        """True once ``size`` bytes arrived."""
        return self.session.offset == self.session.size

    def add(self, chunk: datasets_pb2.SampleChunk) -> None:
        """Store a chunk, or fail the stream if it does not continue this sample exactly."""
        if chunk.client_id != self.client_id:
            raise _stream_error(
                ErrorCode.INCOMPLETE_SAMPLE,
                f"chunk for client_id {chunk.client_id!r} while sample {self.client_id!r} is "
                f"unfinished ({self.offset} of {self.size} bytes)",
            )
        if chunk.offset != self.offset:
            raise MobiletrainError(
                ErrorCode.UPLOAD_OFFSET_MISMATCH,
                f"chunk of sample {self.client_id!r} has offset {chunk.offset}; the server holds "
                f"{self.offset} bytes (see GetUploadOffset)",
                offset=self.offset,
            )
        if not chunk.data:
            raise _stream_error(
                ErrorCode.INCOMPLETE_SAMPLE, f"empty chunk for sample {self.client_id!r}"
            )
        if self.offset + len(chunk.data) > self.size:
            raise _stream_error(
                ErrorCode.INCOMPLETE_SAMPLE,
                f"sample {self.client_id!r} got more than the {self.size} bytes its header "
                "declared",
            )
        self.session = self.uploads.append(self.session.id, chunk.offset, bytes(chunk.data))

    def finish(self) -> IncomingSample:
        """The complete sample (rejected, and its session dropped, if its SHA-256 differs)."""
        sample = self.uploads.assemble(self.session)
        if sample.error is not None:
            self.uploads.abort(self.session.id)  # start over on the next try
        elif self.header.boxes:
            # A detection image's boxes travel in its header (sent again on every resume).
            sample.boxes = serde.boxes_from_proto(self.header.boxes)
        return sample

    def unfinished(self) -> IncomingSample:
        """The sample rejected because the stream ended before all its bytes came."""
        error = MobiletrainError(
            ErrorCode.INCOMPLETE_SAMPLE,
            f"the stream ended after {self.offset} of {self.size} bytes; resume from offset "
            f"{self.offset}",
        )
        return serde.sample_header_from_proto(self.header, b"", error)


def incoming_samples(
    requests: Iterable[datasets_pb2.UploadSamplesRequest],
    project: str,
    uploads: ResumableUploads,
    completed: list[str] | None = None,
) -> Iterator[IncomingSample]:
    """Yield one sample per inline sample or header, in arrival order, reading lazily.

    ``project`` is the project of the first message; every message must name it or leave it
    empty. A header opens (or finds again) the sample's upload session, whose limits are
    checked before any chunk is accepted. The ids of the sessions whose sample is complete
    are added to ``completed``: drop them once the samples are ingested (accepted or not).
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
                if completed is not None:
                    completed.append(finished.session.id)
                yield finished.finish()
            continue

        if open_sample is not None:
            raise _stream_error(
                ErrorCode.INCOMPLETE_SAMPLE,
                f"a new sample started while sample {open_sample.client_id!r} is unfinished "
                f"({open_sample.offset} of {open_sample.size} bytes)",
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
        try:
            status = uploads.open(
                project, header.client_id, header.label, int(header.size), header.sha256
            )
        except MobiletrainError as rejection:
            skipping = header.client_id
            yield serde.sample_header_from_proto(header, b"", rejection)
            continue
        if status.sample is not None:
            # Stored already: report it (as a duplicate) and drop any chunks that follow.
            skipping = header.client_id
            try:
                data = uploads.datasets.read_bytes(status.sample)
            except MobiletrainError as damaged:
                yield serde.sample_header_from_proto(header, b"", damaged)
                continue
            yield serde.sample_header_from_proto(header, data, None)
            continue
        open_sample = _ChunkedSample(uploads, header, status)
        if open_sample.complete:  # every byte arrived in an earlier stream
            finished, open_sample = open_sample, None
            if completed is not None:
                completed.append(finished.session.id)
            yield finished.finish()

    if open_sample is not None:
        yield open_sample.unfinished()
