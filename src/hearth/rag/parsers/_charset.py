"""Bytes to str for the text formats: a byte-order mark, else UTF-8, else detection."""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

from hearth.rag.parsers.base import ParseError

# UTF-32 first: its little-endian mark starts with UTF-16's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_BINARY = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f]")
_NOT_TEXT = "the file does not look like text (binary data or an unknown encoding)"


def decode_text(data: bytes, *, declared: str | None = None) -> str:
    """Decode a text file; `declared` is an encoding the file names itself (HTML meta)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _checked(data.decode(encoding, errors="replace"))
    try:
        return _checked(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        # A file cut in the middle of its last character is still UTF-8.
        if exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return _checked(data[: exc.start].decode("utf-8"))
    if declared:
        try:
            return _checked(data.decode(declared))
        except (LookupError, UnicodeDecodeError):
            pass
    return _checked(_detect(data))


def _detect(data: bytes) -> str:
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise ParseError(_NOT_TEXT)
    encoding = best.encoding
    # On short Western text, detection often picks a sibling code page (cp1250, mac_latin2)
    # that maps accented letters differently; cp1252 is by far the most common legacy
    # encoding of the files we get, so it wins any near tie.
    if any(m.encoding == "cp1252" and m.chaos <= best.chaos + 0.05 for m in matches):
        encoding = "cp1252"
    return data.decode(encoding, errors="replace")


def _checked(text: str) -> str:
    # A stray control character or two is noise in a text file; more than 1% is binary data.
    sample = text[:65536]
    if len(_BINARY.findall(sample)) > max(2, len(sample) // 100):
        raise ParseError(_NOT_TEXT)
    return text
