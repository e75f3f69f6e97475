"""PDF with PDFium: text page by page, cut into paragraphs by line spacing and font size.

Sections come from the outline (bookmarks) when the PDF has one, else from short lines set
larger than the body text.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from statistics import median

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from hearth.rag.parsers._blocks import BlockBuilder, clean_line
from hearth.rag.parsers.base import ParsedDocument, ParseError, ParseLimits, text_limit_error

# PDFium must not be entered from two threads at once, even for different documents, and
# callers parse in worker threads.
_PDFIUM = threading.Lock()
_MAX_OUTLINE_ENTRIES = 10_000
# A line alone that only numbers the page: "7", "- 7 -", "Page 7 of 20".
_PAGE_NUMBER = re.compile(
    r"(?:page\s*)?[-\u2013\u2014]?\s*\d{1,4}\s*[-\u2013\u2014]?(?:\s*(?:/|of)\s*\d{1,4})?", re.I
)
_HEADING_MAX_CHARS = 150
_HEADING_MIN_SCALE = 1.15  # times the body text's line height
_HEADING_LEVELS = 4


@dataclass(frozen=True)
class _Line:
    text: str
    bottom: float
    height: float


@dataclass(frozen=True)
class _Paragraph:
    text: str
    height: float  # line height of its first line: a stand-in for the font size


def parse_pdf(data: bytes, filename: str, *, limits: ParseLimits) -> ParsedDocument:
    with _PDFIUM:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise ParseError(_load_error(exc)) from exc
        try:
            # The page count comes from the page tree, without loading a page: a PDF of
            # 10,000 pages fails here, before its text is read.
            if len(pdf) > limits.max_pdf_pages:
                raise ParseError(f"the PDF has more than {limits.max_pdf_pages:,} pages")
            title = pdf.get_metadata_dict().get("Title")
            outline = _outline(pdf)
            pages = _read_pages(pdf, limits.max_text_chars)
        finally:
            pdf.close()
    if not pages:
        raise ParseError("the PDF has no pages")
    if not any(pages):
        raise ParseError("the PDF has no text layer (is it a scanned document?)")
    builder = BlockBuilder(limits.max_text_chars)
    levels = {} if outline else _heading_levels(pages)
    for index, paragraphs in enumerate(pages):
        entries = outline.get(index, [])
        on_page = {_key(p.text) for p in paragraphs}
        # A section whose title is not on its page (an image, other wording) starts with it.
        for level, heading in entries:
            if _key(heading) not in on_page:
                builder.heading(level, heading)
        for paragraph in paragraphs:
            matched = [(lvl, h) for lvl, h in entries if _key(h) == _key(paragraph.text)]
            level = levels.get(_bucket(paragraph.height))
            if matched:
                for lvl, heading in matched:
                    builder.heading(lvl, heading)
            elif level and len(paragraph.text) <= _HEADING_MAX_CHARS:
                builder.heading(level, paragraph.text)
            else:
                builder.add(paragraph.text, page=index + 1)
    return builder.document(title=title, pages=len(pages))


def _load_error(exc: pdfium.PdfiumError) -> str:
    code = getattr(exc, "err_code", None)
    if code == pdfium_c.FPDF_ERR_PASSWORD:
        return "the PDF is encrypted (password-protected)"
    if code == pdfium_c.FPDF_ERR_SECURITY:
        return "the PDF is encrypted with an unsupported security handler"
    return "the file is not a valid PDF (it may be damaged)"


def _outline(pdf: pdfium.PdfDocument) -> dict[int, list[tuple[int, str]]]:
    """Page index -> the sections starting there, as (level from 1, title)."""
    entries: dict[int, list[tuple[int, str]]] = {}
    for count, bookmark in enumerate(pdf.get_toc()):
        if count >= _MAX_OUTLINE_ENTRIES:
            break
        dest = bookmark.get_dest()
        index = dest.get_index() if dest is not None else None
        title = clean_line(bookmark.get_title() or "")
        if index is not None and title:
            entries.setdefault(index, []).append((bookmark.level + 1, title))
    return entries


def _read_pages(pdf: pdfium.PdfDocument, max_text_chars: int) -> list[list[_Paragraph]]:
    pages = []
    chars = 0
    for index in range(len(pdf)):
        try:
            page = pdf[index]
        except pdfium.PdfiumError as exc:
            raise ParseError(f"page {index + 1} of the PDF is damaged") from exc
        try:
            textpage = page.get_textpage()
            try:
                paragraphs = _paragraphs(textpage)
            finally:
                textpage.close()
        except pdfium.PdfiumError as exc:
            raise ParseError(f"page {index + 1} of the PDF is damaged") from exc
        finally:
            page.close()
        chars += sum(len(p.text) for p in paragraphs)
        if chars > max_text_chars:  # stop reading, not only building, at the limit
            raise text_limit_error(max_text_chars)
        pages.append(paragraphs)
    return pages


def _paragraphs(textpage: pdfium.PdfTextPage) -> list[_Paragraph]:
    """Group the page's lines: a new paragraph where the spacing grows or the size changes.

    Words hyphenated across lines come back joined, with U+FFFE for the hyphen, which
    `clean_text` drops."""
    text = textpage.get_text_range()
    lines: list[_Line] = []
    position = 0
    for raw in text.split("\r\n"):  # PDFium's generated line breaks count as characters
        stripped = raw.lstrip()
        if stripped.strip():
            first = position + len(raw) - len(stripped)
            try:
                _, bottom, _, top = textpage.get_charbox(first, loose=True)
                height = top - bottom
            except pdfium.PdfiumError:  # no box: keep the line with the one before
                bottom, height = (lines[-1].bottom, lines[-1].height) if lines else (0.0, 0.0)
            lines.append(_Line(raw.strip(), bottom, height))
        position += len(raw) + 2
    if not lines:
        return []
    pitches = [a.bottom - b.bottom for a, b in pairwise(lines) if a.bottom > b.bottom]
    usual = median(pitches) if pitches else 0.0
    groups = [[lines[0]]]
    for prev, line in pairwise(lines):
        pitch = prev.bottom - line.bottom
        same_size = abs(line.height - prev.height) <= 0.15 * max(line.height, prev.height)
        same_line = abs(pitch) < 0.5 * line.height  # cells of a table row
        close = 0 < pitch <= min(2 * line.height, 1.3 * usual or 2 * line.height)
        if same_size and (same_line or close):
            groups[-1].append(line)
        else:
            groups.append([line])
    paragraphs = (
        _Paragraph("\n".join(line.text for line in group), group[0].height) for group in groups
    )
    return [p for p in paragraphs if not _PAGE_NUMBER.fullmatch(p.text)]


def _heading_levels(pages: list[list[_Paragraph]]) -> dict[float, int]:
    """Line-height bucket -> heading level, for heights clearly above the body text's."""
    weights: Counter[float] = Counter()
    for paragraphs in pages:
        for paragraph in paragraphs:
            weights[_bucket(paragraph.height)] += len(paragraph.text)
    if not weights:
        return {}
    body = weights.most_common(1)[0][0]
    larger = sorted((h for h in weights if h >= body * _HEADING_MIN_SCALE), reverse=True)
    return {h: min(rank, _HEADING_LEVELS) for rank, h in enumerate(larger, start=1)}


def _bucket(height: float) -> float:
    return round(height * 2) / 2


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()
