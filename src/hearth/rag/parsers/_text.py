"""Plain text and source code: decoded, then cut into paragraphs or top-level definitions."""

from __future__ import annotations

import re

from hearth.rag.parsers._blocks import BlockBuilder
from hearth.rag.parsers._charset import decode_text
from hearth.rag.parsers.base import ParsedDocument, ParseLimits

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_CLOSERS = ")]}"


def parse_text(data: bytes, filename: str, *, limits: ParseLimits) -> ParsedDocument:
    text = decode_text(data).replace("\r\n", "\n")
    builder = BlockBuilder(limits.max_text_chars)
    for paragraph in _PARAGRAPH_BREAK.split(text):
        builder.add(paragraph)
    return builder.document()


def parse_code(data: bytes, filename: str, *, limits: ParseLimits) -> ParsedDocument:
    text = decode_text(data).replace("\r\n", "\n")
    builder = BlockBuilder(limits.max_text_chars)
    for block in code_blocks(text):
        builder.add(block, kind="code")
    return builder.document()


def code_blocks(text: str) -> list[str]:
    """Cut at blank lines followed by a line at column 0 that does not close a bracket: between
    top-level definitions in most languages (and YAML keys, TOML/INI sections), while a
    function body, indented, stays whole with its inner blank lines."""
    blocks: list[str] = []
    current: list[str] = []
    after_blank = False
    for line in text.split("\n"):
        if not line.strip():
            after_blank = True
            current.append(line)
            continue
        starts_definition = not line[0].isspace() and line[0] not in _CLOSERS
        if after_blank and starts_definition and current:
            blocks.append("\n".join(current))
            current = []
        after_blank = False
        current.append(line)
    blocks.append("\n".join(current))
    return blocks
