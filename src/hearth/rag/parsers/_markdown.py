"""Markdown with markdown-it-py (CommonMark and tables): headings make the section path;
paragraphs, whole lists, tables and code blocks become blocks; markup is dropped."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

from hearth.rag.parsers._blocks import BlockBuilder, clean_line
from hearth.rag.parsers._charset import decode_text
from hearth.rag.parsers.base import ParsedDocument, ParseLimits

_MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
# YAML front matter (Jekyll, Hugo, Obsidian) would otherwise read as a heading.
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)
_TAG = re.compile(r"<[^>]*>")


def parse_markdown(data: bytes, filename: str, *, limits: ParseLimits) -> ParsedDocument:
    text = decode_text(data)
    title = None
    if front := _FRONT_MATTER.match(text):
        text = text[front.end() :]
        if found := _FRONT_MATTER_TITLE.search(front[1]):
            title = found[1].strip("'\"")
    tokens = _MARKDOWN.parse(text)
    builder = BlockBuilder(limits.max_text_chars)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.type == "heading_open":
            level, heading = int(token.tag[1]), _inline(tokens[i + 1])
            builder.heading(level, heading)
            if level == 1 and title is None:
                title = clean_line(heading)
            i = _closing(tokens, i)
        elif token.type in ("bullet_list_open", "ordered_list_open"):
            end = _closing(tokens, i)
            builder.add(_list_text(tokens[i : end + 1]), kind="list")
            i = end
        elif token.type == "table_open":
            end = _closing(tokens, i)
            builder.add_table(_table_rows(tokens[i : end + 1]), header=True)
            i = end
        elif token.type in ("fence", "code_block"):
            builder.add(token.content, kind="code")
        elif token.type == "inline":  # a paragraph, also inside a block quote
            builder.add(_inline(token))
        elif token.type == "html_block":
            builder.add(html.unescape(_TAG.sub(" ", token.content)))
        i += 1
    return builder.document(title=title)


def _closing(tokens: Sequence[Token], start: int) -> int:
    """Index of the token closing the one at `start` (itself if it opens nothing)."""
    depth = 0
    for index in range(start, len(tokens)):
        depth += tokens[index].nesting
        if depth <= 0:
            return index
    return len(tokens) - 1


def _inline(token: Token) -> str:
    parts = []
    for child in token.children or ():
        if child.type in ("text", "code_inline", "image"):  # an image's content is its alt text
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
    return "".join(parts)


def _list_text(tokens: Sequence[Token]) -> str:
    """A list and its nested lists as "- item" / "1. item" lines, indented by depth."""
    lines: list[str] = []
    depth = 0
    marker = ""
    for token in tokens:
        if token.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
        elif token.type == "list_item_open":
            marker = f"{token.info}. " if token.info else "- "
        elif token.type in ("inline", "fence", "code_block"):
            text = _inline(token) if token.type == "inline" else token.content.rstrip("\n")
            indent = "  " * (depth - 1)
            for line in text.split("\n"):
                lines.append(f"{indent}{marker or '  '}{line}")
                marker = ""
    return "\n".join(lines)


def _table_rows(tokens: Sequence[Token]) -> list[list[str]]:
    rows: list[list[str]] = []
    for token in tokens:
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows:
            rows[-1].append(_inline(token))
    return rows
