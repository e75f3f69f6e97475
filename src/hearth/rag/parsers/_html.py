"""HTML with selectolax (lexbor): the page's text without scripts, styles, navigation or
footers; h1-h6 make the section path; lists, tables and <pre> become blocks of their own."""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from hearth.rag.parsers._blocks import BlockBuilder, clean_line
from hearth.rag.parsers._charset import decode_text
from hearth.rag.parsers.base import ParsedDocument, ParseLimits

_SKIPPED = frozenset({
    "-comment", "head", "script", "style", "noscript", "template", "nav", "footer", "svg",
    "math", "iframe", "object", "embed", "canvas", "select", "button",
})  # fmt: skip
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "form", "header", "hr", "legend",
    "li", "main", "p", "section", "summary", "td", "th", "tr",
})  # fmt: skip
_LISTS = frozenset({"ul", "ol", "menu"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def parse_html(data: bytes, filename: str, *, limits: ParseLimits) -> ParsedDocument:
    declared = _META_CHARSET.search(data[:4096])
    text = decode_text(data, declared=declared[1].decode("ascii") if declared else None)
    tree = LexborHTMLParser(text)
    title_node = tree.css_first("title")
    reader = _Reader(BlockBuilder(limits.max_text_chars))
    reader.read(tree.body or tree.root)
    reader.flush()
    title = (title_node.text() if title_node else None) or reader.first_h1
    return reader.builder.document(title=title)


class _Reader:
    """Walks the DOM in document order, gathering inline text until a block element ends it."""

    def __init__(self, builder: BlockBuilder) -> None:
        self.builder = builder
        self.inline: list[str] = []
        self.first_h1: str | None = None

    def flush(self) -> None:
        self.builder.add("".join(self.inline))
        self.inline.clear()

    def read(self, node: LexborNode) -> None:
        for child in node.iter(include_text=True):
            tag = child.tag
            if tag == "-text":
                self.inline.append(_SPACES.sub(" ", child.text_content or ""))
            elif tag in _SKIPPED or _hidden(child):
                continue
            elif tag == "br":
                self.inline.append("\n")
            elif tag in _HEADINGS:
                self.flush()
                heading = clean_line(_text(child))
                self.builder.heading(_HEADINGS[tag], heading)
                if tag == "h1" and self.first_h1 is None:
                    self.first_h1 = heading
            elif tag in _LISTS:
                self.flush()
                self.builder.add("\n".join(_list_lines(child, 0)), kind="list")
            elif tag == "table":
                self.flush()
                rows = [_cells(row) for row in child.css("tr")]
                self.builder.add_table(rows, header=_has_header(child))
            elif tag == "pre":
                self.flush()
                self.builder.add(child.text(deep=True), kind="code")
            elif tag in _BLOCKS:
                self.flush()
                self.read(child)
                self.flush()
            else:
                self.read(child)


def _hidden(node: LexborNode) -> bool:
    attributes = node.attributes
    return "hidden" in attributes or attributes.get("aria-hidden") == "true"


def _text(node: LexborNode, *, lists: bool = True) -> str:
    """The visible text under a node; without nested lists if `lists` is false."""
    parts: list[str] = []
    for child in node.iter(include_text=True):
        tag = child.tag
        if tag == "-text":
            parts.append(child.text_content or "")
        elif tag in _SKIPPED or (not lists and tag in _LISTS) or _hidden(child):
            continue
        elif tag == "br" or tag in _BLOCKS:
            parts.append(" ")
            parts.append(_text(child, lists=lists))
        else:
            parts.append(_text(child, lists=lists))
    return "".join(parts)


def _list_lines(node: LexborNode, depth: int) -> list[str]:
    lines = []
    marker = "1. " if node.tag == "ol" else "- "
    for number, item in enumerate((c for c in node.iter() if c.tag == "li"), start=1):
        if text := clean_line(_text(item, lists=False)):
            prefix = f"{number}. " if marker == "1. " else marker
            lines.append("  " * depth + prefix + text)
        for nested in _sublists(item):
            lines += _list_lines(nested, depth + 1)
    return lines


def _sublists(node: LexborNode) -> list[LexborNode]:
    found = []
    for child in node.iter():
        if child.tag in _LISTS:
            found.append(child)
        elif child.tag not in _SKIPPED and not _hidden(child):
            found += _sublists(child)
    return found


def _cells(row: LexborNode) -> list[str]:
    return [_text(cell) for cell in row.iter() if cell.tag in ("td", "th")]


def _has_header(table: LexborNode) -> bool | None:
    first = table.css_first("tr")
    return True if first is not None and first.css_first("th") is not None else None
