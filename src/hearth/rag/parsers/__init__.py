"""Uploaded files to text that keeps its structure (section path, page) for chunking and
citations: PDF, Word, PowerPoint, Excel, CSV, HTML, Markdown, plain text and source code.

Each format is a `Parser` in a registry; the built-ins are registered like plugins, and
their libraries are imported only when a file of that format is parsed.
"""

from hearth.rag.parsers.base import Block, BlockKind, ParsedDocument, ParseError, Parser
from hearth.rag.parsers.registry import (
    DEFAULT_MAX_TEXT_CHARS,
    find_parser,
    is_supported,
    parse_document,
    register_parser,
)

__all__ = [
    "DEFAULT_MAX_TEXT_CHARS",
    "Block",
    "BlockKind",
    "ParseError",
    "ParsedDocument",
    "Parser",
    "find_parser",
    "is_supported",
    "parse_document",
    "register_parser",
]
