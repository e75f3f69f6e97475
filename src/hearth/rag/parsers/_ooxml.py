"""Checks shared by the Office Open XML formats (DOCX, PPTX, XLSX) before a library opens them.

The libraries (python-docx, python-pptx, openpyxl) read the package with zipfile, which
trusts each member's declared size: it inflates a member whole, then cuts it to that size,
so a member that declares 1,000 bytes can fill a gigabyte first. Here every member is
inflated before the libraries see it, as a stream, a chunk at a time, and must come to
exactly the size it declares; zipfile inflates the same streams, so what the libraries
then unpack is bounded by sizes counted here, not merely claimed by the file. The same pass counts
the XML elements (paragraphs, runs, cells...), which python-docx and python-pptx load into
trees whole: fourteen million empty paragraphs fit in 150 KB.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterator

from hearth.rag.parsers.base import ParseError, ParseLimits

# Encrypted OOXML files are not ZIP packages but OLE compound files holding an
# "EncryptedPackage" stream; an OLE file without one is the old binary format (.doc, .xls).
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
# What the Office libraries raise on a damaged package: a bad ZIP entry, deflate stream or
# XML part (lxml's and ElementTree's syntax errors are SyntaxErrors), a missing part.
DAMAGED = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    SyntaxError,
    NotImplementedError,
    KeyError,
    ValueError,
)
_MIN_UNPACKED = 256 * 1024 * 1024
_UNPACKED_PER_CHAR = 64  # markup around each character of text, generously
_CHUNK = 64 * 1024  # inflated bytes held at once per member
# signature, version, flags, method, time, date, CRC, sizes, name and extra field lengths
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"


class _Damaged(Exception):
    """A member that is not what the central directory says it is."""


def check_package(data: bytes, name: str, extension: str, *, limits: ParseLimits) -> None:
    """Raise ParseError for an encrypted or legacy file, a damaged ZIP, or a ZIP bomb: more
    unpacked bytes than a bound scaled to the text limit, a member larger than it declares,
    or more XML elements than `limits.max_elements`."""
    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTED_STREAM in data:
            raise ParseError(f"the {name} is encrypted (password-protected)")
        raise ParseError(
            f"the file is in the old binary Office format; save it as {extension} and upload "
            "it again"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            members = package.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise invalid_package(name) from exc
    max_bytes = max(_MIN_UNPACKED, _UNPACKED_PER_CHAR * limits.max_text_chars)
    # No member may inflate past its declared size, so the declared sizes bound the bytes
    # unpacked: also for entries that share one stored stream, each counted apart.
    if sum(info.file_size for info in members) > max_bytes:
        raise ParseError(f"the {name} unpacks to more than {max_bytes // 2**20:,} MB")
    elements = 0
    view = memoryview(data)
    try:
        for info in members:
            size = 0
            for chunk in _inflated(view, info):
                size += len(chunk)
                if size > info.file_size:  # stop at once: the rest may be a gigabyte
                    raise _Damaged(f"{info.filename} is larger than it declares")
                elements += _element_count(chunk)
                if elements > limits.max_elements:
                    raise ParseError(
                        f"the {name} has more than {limits.max_elements:,} elements "
                        "(paragraphs, runs, table cells and the like)"
                    )
            if size != info.file_size:
                raise _Damaged(f"{info.filename} is smaller than it declares")
    except (_Damaged, zlib.error, struct.error) as exc:
        raise invalid_package(name) from exc


def _inflated(data: memoryview, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """A member's bytes, at most _CHUNK at a time: read where zipfile reads them (after the
    local header), inflated with the same zlib, but without trusting any size but our own."""
    if info.flag_bits & 0x1:
        raise _Damaged(f"{info.filename} is encrypted")  # Office never encrypts members
    header = _LOCAL_HEADER.unpack_from(data, info.header_offset)
    if header[0] != _LOCAL_SIGNATURE:
        raise _Damaged(f"{info.filename} has no local header")
    start = info.header_offset + _LOCAL_HEADER.size + header[-2] + header[-1]
    stored = data[start : start + info.compress_size]
    if len(stored) != info.compress_size:
        raise _Damaged(f"{info.filename} is cut short")
    if info.compress_type == zipfile.ZIP_STORED:
        for offset in range(0, len(stored), _CHUNK):
            yield bytes(stored[offset : offset + _CHUNK])
        return
    if info.compress_type != zipfile.ZIP_DEFLATED:  # Office writes nothing else
        raise _Damaged(f"{info.filename} uses compression method {info.compress_type}")
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    for offset in range(0, len(stored), _CHUNK):
        pending = bytes(stored[offset : offset + _CHUNK])
        while not inflater.eof:
            chunk = inflater.decompress(pending, _CHUNK)
            pending = inflater.unconsumed_tail
            if chunk:
                yield chunk
            # A full chunk may leave output inside zlib even when all input is consumed.
            if not pending and len(chunk) < _CHUNK:
                break
        if inflater.eof:
            break
    if tail := inflater.flush():
        yield tail


def _element_count(chunk: bytes) -> int:
    """Start tags in a piece of XML, erring high: `<` cannot appear unescaped in XML text or
    attribute values, so every `<` begins a tag, an end tag, a comment, a declaration or a
    processing instruction. Binary parts (images) add about one per 256 bytes; a tag cut
    between two chunks may count once too often."""
    return chunk.count(b"<") - chunk.count(b"</") - chunk.count(b"<?") - chunk.count(b"<!")


def invalid_package(name: str) -> ParseError:
    return ParseError(f"the file is not a valid {name} (it may be damaged)")
