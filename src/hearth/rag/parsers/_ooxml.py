"""Checks shared by the Office Open XML formats (DOCX, PPTX, XLSX) before a library opens them."""

from __future__ import annotations

import io
import zipfile
import zlib

from hearth.rag.parsers.base import ParseError

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


def check_package(data: bytes, name: str, extension: str, *, max_text_chars: int) -> None:
    """Raise ParseError for an encrypted or legacy file, a damaged ZIP, or a ZIP bomb.

    The Office libraries load every part into memory, so the unpacked size (which zipfile
    enforces while reading) is checked first, against a bound scaled to the text limit."""
    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTED_STREAM in data:
            raise ParseError(f"the {name} is encrypted (password-protected)")
        raise ParseError(
            f"the file is in the old binary Office format; save it as {extension} and upload "
            "it again"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            unpacked = sum(info.file_size for info in package.infolist())
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise invalid_package(name) from exc
    limit = max(_MIN_UNPACKED, _UNPACKED_PER_CHAR * max_text_chars)
    if unpacked > limit:
        raise ParseError(f"the {name} unpacks to more than {limit // 2**20:,} MB")


def invalid_package(name: str) -> ParseError:
    return ParseError(f"the file is not a valid {name} (it may be damaged)")
