"""Read the ``placekit`` metadata entry of a TFLite flatbuffer without TensorFlow.

A TFLite ``Model`` table has a vector ``metadata`` (field 6) of ``{name, buffer}`` tables;
``buffers`` (field 4) holds ``{data: [ubyte]}``. placekit stores one entry named
``placekit`` whose buffer is UTF-8 JSON of the ``placekit.*`` key/value pairs of
``ModelInfo.to_metadata()``.
"""

from __future__ import annotations

import json

from placekit.errors import ModelFormatError

METADATA_NAME = "placekit"
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_META_NAME, _META_BUFFER = 0, 1
_BUFFER_DATA = 0


def _field(table, slot: int) -> int:
    return table.Offset(4 + 2 * slot)


def read_tflite_metadata(data: bytes, source: str = "model") -> dict[str, str]:
    """The placekit metadata dict of a TFLite model; {} when the model has none."""
    try:
        import flatbuffers
        from flatbuffers.table import Table
    except ImportError as exc:  # flatbuffers ships with onnxruntime and LiteRT
        raise ModelFormatError("reading TFLite metadata needs the 'flatbuffers' package") from exc
    try:
        buf = bytearray(data)
        model = Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
        meta_off = _field(model, _MODEL_METADATA)
        if not meta_off:
            return {}
        for i in range(model.VectorLen(meta_off)):
            entry = Table(buf, model.Indirect(model.Vector(meta_off) + 4 * i))
            name_off = _field(entry, _META_NAME)
            if not name_off or entry.String(name_off + entry.Pos).decode() != METADATA_NAME:
                continue
            buffer_index = entry.Get(flatbuffers.number_types.Uint32Flags, entry.Pos + _field(entry, _META_BUFFER))
            buffers_off = _field(model, _MODEL_BUFFERS)
            buffer = Table(buf, model.Indirect(model.Vector(buffers_off) + 4 * buffer_index))
            data_off = _field(buffer, _BUFFER_DATA)
            start = buffer.Vector(data_off)
            payload = bytes(buf[start : start + buffer.VectorLen(data_off)])
            return {str(k): str(v) for k, v in json.loads(payload.decode("utf-8")).items()}
    except (IndexError, ValueError, UnicodeDecodeError, AttributeError, TypeError) as exc:
        raise ModelFormatError(f"{source}: unreadable TFLite metadata: {exc}") from exc
    return {}
