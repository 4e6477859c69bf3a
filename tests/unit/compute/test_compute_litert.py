"""TF-free TFLite flatbuffer reading (manifest, custom ops) on hand-built flatbuffers."""

from __future__ import annotations

import json
import subprocess
import sys

import flatbuffers
import pytest

from mobiletrain.compute.litert import custom_op_names, read_embedded_manifest, read_tflite_metadata

_CUSTOM = 32
_CONV_2D = 3


def _vector(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return int(builder.EndVector())


def fake_tflite(metadata: dict[str, bytes], ops: list[str | int] | None = None) -> bytes:
    """Build a minimal Model flatbuffer: operator codes, buffers and metadata only.

    ``ops`` items are builtin codes (int) or custom op names (str).
    """
    b = flatbuffers.Builder(0)
    buffers = []
    for data in [b"", *metadata.values()]:  # buffer 0 is the empty sentinel, as in TFLite
        vec = b.CreateByteVector(data) if data else None
        b.StartObject(3)
        if vec is not None:
            b.PrependUOffsetTRelativeSlot(0, vec, 0)
        buffers.append(b.EndObject())
    entries = []
    for i, name in enumerate(metadata):
        s = b.CreateString(name)
        b.StartObject(2)
        b.PrependUOffsetTRelativeSlot(0, s, 0)
        b.PrependUint32Slot(1, i + 1, 0)
        entries.append(b.EndObject())
    codes = []
    for op in ops or []:
        custom = b.CreateString(op) if isinstance(op, str) else None
        code = _CUSTOM if isinstance(op, str) else op
        b.StartObject(4)
        b.PrependInt8Slot(0, min(code, 127), 0)
        if custom is not None:
            b.PrependUOffsetTRelativeSlot(1, custom, 0)
        b.PrependInt32Slot(3, code, 0)
        codes.append(b.EndObject())
    codes_vec, buffers_vec, entries_vec = (
        _vector(b, codes),
        _vector(b, buffers),
        _vector(b, entries),
    )
    b.StartObject(8)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, codes_vec, 0)
    b.PrependUOffsetTRelativeSlot(4, buffers_vec, 0)
    b.PrependUOffsetTRelativeSlot(6, entries_vec, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_reads_manifest_among_other_metadata() -> None:
    manifest = {"schema_version": 1, "labels": ["a", "b"], "note": "ünïcode"}
    data = fake_tflite(
        {
            "min_runtime_version": b"1.5.0\x00",
            "mobiletrain_manifest": json.dumps(manifest).encode("utf-8"),
        }
    )
    assert read_embedded_manifest(data) == manifest
    assert read_tflite_metadata(data)["min_runtime_version"] == b"1.5.0\x00"


def test_missing_manifest_is_none() -> None:
    assert read_embedded_manifest(fake_tflite({"other": b"x"})) is None
    assert read_embedded_manifest(fake_tflite({})) is None


def test_bad_input_raises_value_error() -> None:
    with pytest.raises(ValueError):
        read_embedded_manifest(b"definitely not a model")
    with pytest.raises(ValueError):
        read_embedded_manifest(fake_tflite({"mobiletrain_manifest": b"{not json"}))
    with pytest.raises(ValueError):
        read_embedded_manifest(fake_tflite({"mobiletrain_manifest": b"[1, 2]"}))
    truncated = fake_tflite({"mobiletrain_manifest": b"{}" * 100})[:40]
    with pytest.raises(ValueError):
        read_tflite_metadata(truncated)


def test_custom_op_names() -> None:
    assert custom_op_names(fake_tflite({}, [_CONV_2D, 150])) == []
    assert custom_op_names(fake_tflite({}, [_CONV_2D, "FlexAddV2", "MyOp", "FlexAddV2"])) == [
        "FlexAddV2",
        "MyOp",
    ]


def test_api_side_modules_do_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "import mobiletrain.compute.litert, mobiletrain.compute.preprocess\n"
        "import mobiletrain.compute.split, mobiletrain.compute.metrics\n"
        "import mobiletrain.compute.protocol, mobiletrain.compute.keras\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
