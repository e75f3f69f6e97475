"""Word (.docx) with python-docx: paragraphs, lists and tables in reading order; sections
from the Heading N styles.

python-docx opens the package and resolves styles; the text is read from the XML, because
`Paragraph.text` skips runs in tracked insertions, content controls and simple fields.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import docx
from docx.document import Document
from docx.enum.style import WD_STYLE_TYPE
from docx.opc.exceptions import PackageNotFoundError
from docx.styles.style import BaseStyle
from lxml import etree

from hearth.rag.parsers._blocks import BlockBuilder, clean_line
from hearth.rag.parsers._ooxml import DAMAGED, check_package, invalid_package
from hearth.rag.parsers.base import ParsedDocument, ParseLimits

NAME = "Word document"
_HEADING_STYLE = re.compile(r"heading ([1-9])", re.IGNORECASE)
_TITLE = 0  # pseudo heading level of the "Title" style

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_NS = {"w": _W, "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006"}
_P, _TBL, _SDT, _SDT_CONTENT = (f"{{{_W}}}{tag}" for tag in ("p", "tbl", "sdt", "sdtContent"))
_TR, _TC = f"{{{_W}}}tr", f"{{{_W}}}tc"
# Deleted text is w:delText, not w:t, so it stays out; a text box is stored twice, and its
# mc:Fallback copy is skipped.
_RUN_PARTS = etree.XPath(
    "(.//w:r/w:t | .//w:r/w:tab | .//w:r/w:br | .//w:r/w:cr)[not(ancestor::mc:Fallback)]",
    namespaces=_NS,
)
_STYLE_ID = etree.XPath("string(w:pPr/w:pStyle/@w:val)", namespaces=_NS)
_NUMBERING = etree.XPath("w:pPr/w:numPr[not(w:numId/@w:val = '0')]", namespaces=_NS)
_NUMBERING_LEVEL = etree.XPath("string(w:ilvl/@w:val)", namespaces=_NS)


def parse_docx(data: bytes, filename: str, *, limits: ParseLimits) -> ParsedDocument:
    check_package(data, NAME, ".docx", limits=limits)
    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, *DAMAGED) as exc:  # not a Word package
        raise invalid_package(NAME) from exc
    styles = _Styles(document)
    builder = BlockBuilder(limits.max_text_chars)
    title = document.core_properties.title or None
    items: list[str] = []  # the list being read, one line per item

    def end_list() -> None:
        if items:
            builder.add("\n".join(items), kind="list")
            items.clear()

    for element in _contents(document.element.body):
        if element.tag == _TBL:
            end_list()
            builder.add_table(_rows(element))
            continue
        style_id = _STYLE_ID(element)
        level = styles.heading_level(style_id)
        text = _text(element)
        if level == _TITLE:
            title = title or clean_line(text) or None
        elif level is not None:
            end_list()
            builder.heading(level, text)
        elif (depth := _list_depth(element, styles.is_list(style_id))) is not None:
            if text := clean_line(text):
                items.append("  " * depth + "- " + text)
        else:
            end_list()
            builder.add(text)
    end_list()
    return builder.document(title=title)


class _Styles:
    """Paragraph style id -> heading level and list-ness, worked out once per style."""

    def __init__(self, document: Document) -> None:
        self._by_id = {s.style_id: s for s in document.styles if s.type == WD_STYLE_TYPE.PARAGRAPH}
        self._default = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
        self._levels: dict[str, int | None] = {}

    def _style(self, style_id: str) -> BaseStyle | None:
        return self._by_id.get(style_id, self._default)

    def heading_level(self, style_id: str) -> int | None:
        if style_id not in self._levels:
            self._levels[style_id] = _heading_level(self._style(style_id))
        return self._levels[style_id]

    def is_list(self, style_id: str) -> bool:
        style = self._style(style_id)
        return style is not None and (style.name or "").startswith("List")


def _heading_level(style: BaseStyle | None) -> int | None:
    # Custom heading styles are usually based on a built-in one: follow a few bases.
    for _ in range(4):
        if style is None:
            return None
        name = style.name or ""
        if name.lower() == "title":
            return _TITLE
        if match := _HEADING_STYLE.fullmatch(name):
            return int(match[1])
        style = style.base_style
    return None


def _contents(container: etree._Element) -> Iterator[etree._Element]:
    """Paragraphs and tables in order, also inside block-level content controls."""
    for child in container.iterchildren(_P, _TBL, _SDT):
        if child.tag == _SDT:
            for content in child.iterchildren(_SDT_CONTENT):
                yield from _contents(content)
        else:
            yield child


def _text(paragraph: etree._Element) -> str:
    parts = []
    for part in _RUN_PARTS(paragraph):
        name = etree.QName(part).localname
        parts.append(part.text or "" if name == "t" else "\t" if name == "tab" else "\n")
    return "".join(parts)


def _list_depth(paragraph: etree._Element, list_style: bool) -> int | None:
    """Nesting depth if the paragraph is a list item: numbered, or in a "List ..." style."""
    if numbering := _NUMBERING(paragraph):
        level = _NUMBERING_LEVEL(numbering[0])
        return int(level) if level.isdigit() else 0
    return 0 if list_style else None


def _rows(table: etree._Element) -> Iterator[list[str]]:
    # One w:tc per cell, however many grid columns it spans; a cell continuing a vertical
    # merge is empty.
    for row in table.iterchildren(_TR):
        yield ["\n".join(_text(p) for p in cell.iter(_P)) for cell in row.iterchildren(_TC)]
