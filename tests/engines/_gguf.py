"""A copy of a GGUF file with another chat template in its metadata: how the tests get a
model whose own template supports tools, from the small bundled one whose template has none.

GGUF (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md): a header, key-value
metadata, tensor infos, padding to the alignment, then the tensor data. Tensor offsets count
from the start of the data, so only the metadata and the padding before the data change.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import BinaryIO

_STRING, _ARRAY = 8, 9
# Sizes of the fixed-size value types, by GGUF type number.
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_TEMPLATE = "tokenizer.chat_template"
_ALIGNMENT = "general.alignment"


def with_chat_template(source: Path, target: Path, template: str) -> Path:
    """Write `source` to `target` with `tokenizer.chat_template` set to `template`."""
    with source.open("rb") as src:
        magic, version, n_tensors, n_kv = struct.unpack("<4sIQQ", src.read(24))
        assert magic == b"GGUF" and version >= 2, "not a GGUF v2+ file"
        entries: list[tuple[bytes, bytes]] = []  # (key, raw type + value)
        alignment = 32
        for _ in range(n_kv):
            key = _read_string(src)
            kind = struct.unpack("<I", src.read(4))[0]
            start = src.tell()
            _skip_value(src, kind)
            end = src.tell()
            src.seek(start)
            raw = struct.pack("<I", kind) + src.read(end - start)
            if key == _ALIGNMENT.encode():
                alignment = struct.unpack("<I", raw[4:8])[0]
            if key != _TEMPLATE.encode():
                entries.append((key, raw))
        entries.append((_TEMPLATE.encode(), struct.pack("<I", _STRING) + _string(template)))
        infos_start = src.tell()
        for _ in range(n_tensors):
            _read_string(src)
            dims = struct.unpack("<I", src.read(4))[0]
            src.read(8 * dims + 4 + 8)
        infos = _read_span(src, infos_start)
        data_start = -(-src.tell() // alignment) * alignment

        with target.open("wb") as out:
            out.write(struct.pack("<4sIQQ", magic, version, n_tensors, len(entries)))
            for key, raw in entries:
                out.write(_string_bytes(key) + raw)
            out.write(infos)
            out.write(b"\0" * (-out.tell() % alignment))
            src.seek(data_start)
            shutil.copyfileobj(src, out, 1 << 20)
    return target


def _read_string(src: BinaryIO) -> bytes:
    length = struct.unpack("<Q", src.read(8))[0]
    return src.read(length)


def _skip_value(src: BinaryIO, kind: int) -> None:
    if kind == _STRING:
        _read_string(src)
    elif kind == _ARRAY:
        item, count = struct.unpack("<IQ", src.read(12))
        if item in _SIZES:
            src.seek(_SIZES[item] * count, 1)
        else:
            for _ in range(count):
                _skip_value(src, item)
    else:
        src.seek(_SIZES[kind], 1)


def _read_span(src: BinaryIO, start: int) -> bytes:
    end = src.tell()
    src.seek(start)
    return src.read(end - start)


def _string(text: str) -> bytes:
    return _string_bytes(text.encode())


def _string_bytes(data: bytes) -> bytes:
    return struct.pack("<Q", len(data)) + data
