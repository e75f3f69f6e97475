"""Uploaded files to text that keeps its structure (section path, page) for chunking and
citations: PDF, Word, PowerPoint, Excel, CSV, HTML, Markdown, plain text and source code.

Each format is a `Parser` in a registry; the built-ins are registered like plugins. Every
parse runs in a child process under `ParseLimits`, so a hostile file can exhaust only that
child; the parsers' libraries are imported there, never in the process that asks.
"""

from hearth.rag.parsers.base import (
    Block,
    BlockKind,
    ParsedDocument,
    ParseError,
    ParseLimits,
    Parser,
)
from hearth.rag.parsers.registry import (
    DEFAULT_LIMITS,
    find_parser,
    is_supported,
    parse_document,
    register_parser,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Block",
    "BlockKind",
    "ParseError",
    "ParseLimits",
    "ParsedDocument",
    "Parser",
    "find_parser",
    "is_supported",
    "parse_document",
    "register_parser",
]
