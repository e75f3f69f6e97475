"""Which parser reads a file, and the one entry point that turns every failure into ParseError.

Every parse runs in a child process under `ParseLimits` (`_process`): the limits hold for
every format, built in or registered, whatever its library does with a hostile file."""

from __future__ import annotations

import dataclasses
import pickle

from hearth.rag.parsers._builtins import BUILTIN_PARSERS
from hearth.rag.parsers._process import parse_in_child
from hearth.rag.parsers.base import (
    ParsedDocument,
    ParseError,
    ParseLimits,
    Parser,
    text_limit_error,
)

DEFAULT_LIMITS = ParseLimits()

_BY_EXTENSION: dict[str, Parser] = {}
_BY_MIME: dict[str, Parser] = {}
# Browsers label unknown text files text/<something>; RTF is the one text/ type that is not
# readable as plain text.
_NOT_PLAIN = frozenset({"text/rtf", "text/richtext"})


def register_parser(parser: Parser) -> None:
    """Read the parser's extensions and MIME types with it, replacing earlier registrations.

    Raises TypeError for a parser that cannot be sent to the child process parses run in."""
    try:
        pickle.dumps(parser)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(
            f"the {parser.name} parser cannot be pickled (make it an instance of a "
            "module-level class): parses run in a child process"
        ) from exc
    for extension in parser.extensions:
        _BY_EXTENSION[extension.lower()] = parser
    for mime_type in parser.mime_types:
        _BY_MIME[mime_type.lower()] = parser


def find_parser(filename: str, content_type: str | None = None) -> Parser | None:
    """The parser for a file: by its extension, else by the content type it was sent with."""
    if parser := _BY_EXTENSION.get(_extension(filename)):
        return parser
    mime_type = _mime_type(content_type)
    if parser := _BY_MIME.get(mime_type):
        return parser
    if mime_type.startswith("text/") and mime_type not in _NOT_PLAIN:
        return _BY_MIME.get("text/plain")
    return None


def is_supported(filename: str, content_type: str | None = None) -> bool:
    return find_parser(filename, content_type) is not None


def parse_document(
    data: bytes,
    filename: str,
    content_type: str | None = None,
    *,
    limits: ParseLimits = DEFAULT_LIMITS,
) -> ParsedDocument:
    """Extract a file's text as blocks with their section path and page, plus its title.

    Raises ParseError, and nothing else, when the file cannot be used: unsupported type,
    empty, damaged, encrypted, without text, or past one of `limits` (text, pages, elements,
    memory, time). Synchronous, and waits for a child process: run it in a worker thread.
    """
    parser = find_parser(filename, content_type)
    if parser is None:
        raise ParseError(_unsupported(filename, content_type))
    if not data:
        raise ParseError("the file is empty")
    document = parse_in_child(parser, data, filename, limits)
    return _checked(document, limits.max_text_chars)


def _checked(document: ParsedDocument, max_text_chars: int) -> ParsedDocument:
    """Hold plugins to what the built-ins guarantee: no empty blocks, text within the limit."""
    blocks = [block for block in document.blocks if block.text.strip()]
    if not blocks:
        raise ParseError("the file contains no text")
    if sum(len(block.text) for block in blocks) > max_text_chars:
        raise text_limit_error(max_text_chars)
    if len(blocks) == len(document.blocks):
        return document
    return dataclasses.replace(document, blocks=blocks)


def _extension(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, extension = name.rpartition(".")
    return f".{extension.lower()}" if dot and stem and extension else ""


def _mime_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _unsupported(filename: str, content_type: str | None) -> str:
    if extension := _extension(filename):
        return f"unsupported file type {extension}"
    if mime_type := _mime_type(content_type):
        return f"unsupported file type {mime_type}"
    return "unsupported file type (the file name has no extension)"


for _parser in BUILTIN_PARSERS:
    register_parser(_parser)
