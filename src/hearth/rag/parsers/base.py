"""What a parser returns, the one error it may raise, and the interface a parser implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

BlockKind = Literal["text", "list", "table", "code"]


@dataclass(frozen=True)
class Block:
    """One unit of text the chunker keeps together when it can: a paragraph, a list, a group
    of table rows (header repeated), a code block, a slide's text frame."""

    text: str
    page: int | None = None  # 1-based page (PDF), slide (PPTX) or sheet (XLSX)
    headings: tuple[str, ...] = ()  # section path; the sheet name (XLSX), slide title (PPTX)
    kind: BlockKind = "text"


@dataclass(frozen=True)
class ParsedDocument:
    blocks: list[Block]
    title: str | None = None
    pages: int | None = None  # page, slide or sheet count where the format has them


class ParseError(Exception):
    """The file cannot be turned into text; `reason` is a short sentence shown to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def text_limit_error(max_text_chars: int) -> ParseError:
    return ParseError(f"the extracted text exceeds the limit of {max_text_chars:,} characters")


class Parser(Protocol):
    """A file format. Register one with `register_parser`; the last one registered for an
    extension or MIME type wins, so a plugin can replace a built-in."""

    @property
    def name(self) -> str:
        """What users call such a file, used after "the" in reasons: "PDF", "Word document"."""

    @property
    def extensions(self) -> tuple[str, ...]:
        """Lower case, with the dot: (".md", ".markdown")."""

    @property
    def mime_types(self) -> tuple[str, ...]:
        """Without parameters: ("text/markdown",)."""

    def parse(self, data: bytes, filename: str, *, max_text_chars: int) -> ParsedDocument:
        """Extract the text of a non-empty file, with whitespace already normalised.

        Raise ParseError for what the user can act on (encrypted, damaged, no text) and
        stop early once the text passes `max_text_chars`: zipped formats expand a lot.
        Other exceptions are reported as a damaged file.
        """
        ...
