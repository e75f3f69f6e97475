"""Markdown to HTML for answers and messages, safely: raw HTML in the text is escaped, not
passed through (markdown-it's `html` option off), links keep only safe schemes (its
validateLink), and code blocks are highlighted on the server by Pygments."""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

_FORMATTER = HtmlFormatter(nowrap=True, classstyle=True)


def _highlight(code: str, language: str, _attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(language.strip()) if language.strip() else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""  # markdown-it escapes the code itself
    return highlight(code, lexer, _FORMATTER)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt(
        "commonmark",
        {"html": False, "linkify": False, "typographer": False, "highlight": _highlight},
    ).enable(["table", "strikethrough"])


@lru_cache(maxsize=4096)
def render_markdown(text: str) -> str:
    """Cached: a chat page shows the same 50 messages each time it is opened, and
    rendering with highlighting costs about a millisecond a message."""
    return _parser().render(text)


def highlight_css() -> str:
    """Pygments' rules for light and dark themes, for the stylesheet."""
    light = HtmlFormatter(style="default").get_style_defs(".md pre")
    dark = HtmlFormatter(style="monokai").get_style_defs(".md pre")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"
