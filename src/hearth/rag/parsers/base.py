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


@dataclass(frozen=True)
class ParseLimits:
    """What reading one file may cost. Hostile files are small (a 1 MB Word file can unpack
    to a gigabyte, a 150 KB one hold fourteen million empty paragraphs), so each bound is on
    the work done, not on the bytes uploaded. A parse that passes one fails with a ParseError;
    the process it runs in (`_process`) enforces the last two whatever the parser does."""

    max_text_chars: int = 5_000_000
    max_pdf_pages: int = 5_000
    # XML elements in a Word, PowerPoint or Excel package: paragraphs, runs, cells and the
    # rest, counted as the package is unpacked, before a library builds a tree of them.
    max_elements: int = 2_000_000
    memory_mb: int = 512  # address space one parse may add to a fresh process
    seconds: float = 60.0  # wall clock, and CPU time, per parse


class ParseError(Exception):
    """The file cannot be turned into text; `reason` is a short sentence shown to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def text_limit_error(max_text_chars: int) -> ParseError:
    return ParseError(f"the extracted text exceeds the limit of {max_text_chars:,} characters")


def memory_limit_error(memory_mb: int) -> ParseError:
    return ParseError(
        f"the file needs more memory to read than the limit of {memory_mb:,} MB allows"
    )


def time_limit_error(seconds: float) -> ParseError:
    return ParseError(f"reading the file took longer than {seconds:g} s")


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

    def parse(self, data: bytes, filename: str, *, limits: ParseLimits) -> ParsedDocument:
        """Extract the text of a non-empty file, with whitespace already normalised.

        Raise ParseError for what the user can act on (encrypted, damaged, no text) and
        stop early once the text passes `limits.max_text_chars`: zipped formats expand a lot.
        Other exceptions are reported as a damaged file. It runs in a child process of its
        own (so the parser must be picklable: an instance of a module-level class), under
        the memory and time limits.
        """
        ...
