"""Collecting a document's blocks: clean text, the current heading path, the text limit."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from hearth.rag.parsers.base import Block, BlockKind, ParsedDocument, text_limit_error

# Invisible characters that only get in the way of search: C0/C1 controls (tab and line
# breaks are handled apart), zero-width space, word joiner, byte-order mark, soft hyphen,
# noncharacters (PDFium's mark for a hyphen that split a word). Zero-width (non-)joiners
# stay: Persian and Indic scripts need them.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u00ad\u200b\u2060\ufeff\ufffe\uffff]"
)
_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
_BLANK_LINES = re.compile(r"\n{3,}")
_NUMBER = re.compile(r"(?=.*\d)[-+]?[\d.,\s%$€£]+")

# Table rows are grouped so that each group, header included, fits in one chunk of the
# embedder (about 192 word pieces) and can be cited on its own.
TABLE_BLOCK_ROWS = 25
TABLE_BLOCK_CHARS = 700


def clean_text(text: str, *, kind: BlockKind = "text") -> str:
    """Drop invisible characters, unify line breaks, collapse runs of spaces and blank lines.

    Code keeps its spacing and lists their indentation (nesting); line ends are trimmed."""
    text = _LINE_BREAKS.sub("\n", _INVISIBLE.sub("", text))
    if kind == "code":
        lines = [line.rstrip() for line in text.split("\n")]
    elif kind == "list":
        lines = [_indent(line) + " ".join(line.split()) for line in text.split("\n")]
    else:
        lines = [" ".join(line.split()) for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n").rstrip()


def _indent(line: str) -> str:
    stripped = line.lstrip()
    return " " * (len(line) - len(stripped)) if stripped else ""


def clean_line(text: str) -> str:
    """`clean_text` on one line: headings, table cells."""
    return " ".join(_INVISIBLE.sub("", text).split())


class BlockBuilder:
    """Builds a ParsedDocument block by block; raises ParseError once the text passes the
    limit, so a zip bomb stops at the limit instead of filling memory."""

    def __init__(self, max_text_chars: int) -> None:
        self.blocks: list[Block] = []
        self._max_chars = max_text_chars
        self._chars = 0
        self._path: list[tuple[int, str]] = []

    @property
    def headings(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._path)

    def heading(self, level: int, text: str) -> None:
        """Enter a section: it replaces the current one at `level` and everything below."""
        text = clean_line(text)
        if not text:
            return
        while self._path and self._path[-1][0] >= level:
            self._path.pop()
        self._path.append((level, text))

    def add(
        self,
        text: str,
        *,
        kind: BlockKind = "text",
        page: int | None = None,
        headings: tuple[str, ...] | None = None,
    ) -> None:
        text = clean_text(text, kind=kind)
        if not text:
            return
        self._chars += len(text)
        if self._chars > self._max_chars:
            raise text_limit_error(self._max_chars)
        headings = self.headings if headings is None else headings
        self.blocks.append(Block(text, page=page, headings=headings, kind=kind))

    def add_table(
        self,
        rows: Iterable[Sequence[str]],
        *,
        header: bool | None = None,
        page: int | None = None,
        headings: tuple[str, ...] | None = None,
    ) -> None:
        """Rows as "a | b | c" lines, a few per block, each block under the header row.

        `header=None` takes the first row as the header unless it holds numbers."""
        head: str | None = None
        group: list[str] = []
        size = 0
        first = True
        for cells in rows:
            line = _row_line(cells)
            if not line:
                continue
            if first:
                first = False
                if header or (header is None and not _has_number(cells)):
                    head = line
                    continue
            if group and (len(group) >= TABLE_BLOCK_ROWS or size + len(line) > TABLE_BLOCK_CHARS):
                self._add_rows(head, group, page, headings)
                group, size = [], 0
            group.append(line)
            size += len(line) + 1
        if group or head:
            self._add_rows(head, group, page, headings)

    def _add_rows(
        self, head: str | None, lines: list[str], page: int | None, headings: tuple[str, ...] | None
    ) -> None:
        text = "\n".join([head, *lines] if head else lines)
        self.add(text, kind="table", page=page, headings=headings)

    def document(self, *, title: str | None = None, pages: int | None = None) -> ParsedDocument:
        return ParsedDocument(self.blocks, title=clean_line(title or "") or None, pages=pages)


def _row_line(cells: Sequence[str]) -> str:
    values = [clean_line(cell) for cell in cells]
    while values and not values[-1]:
        values.pop()
    return " | ".join(values) if any(values) else ""


def _has_number(cells: Sequence[str]) -> bool:
    return any(cell.strip() and _NUMBER.fullmatch(cell.strip()) for cell in cells)
