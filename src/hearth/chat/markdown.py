"""Markdown to HTML for answers and messages, safely: raw HTML in the text is escaped, not
passed through (markdown-it's `html` option off), links keep only safe schemes (its
validateLink), code blocks are highlighted on the server by Pygments, and TeX math
(`\\(..\\)` inline, `\\[..\\]` and `$$..$$` displayed) becomes MathML on the server
(latex2mathml; browsers draw MathML natively, so no script or CDN)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from latex2mathml.converter import convert as tex_to_mathml
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from mdit_py_plugins.texmath.index import make_block_func, make_inline_func, rules
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


# latex2mathml keeps \\href's target as an attribute; a link in math is not worth a
# javascript: URL's risk.
_HREF = re.compile(r'\s+href="[^"]*"')
# A single $ is left alone: in chat it is far more often money than math.
_DISPLAY_INLINE = {
    "name": "math_display_inline",
    "rex": re.compile(r"^\$\$(.+?)\$\$", re.DOTALL),
    "tmpl": "",
    "tag": "$$",
}


def _math(tex: str, *, display: bool) -> str:
    try:
        mathml = tex_to_mathml(tex.strip(), display="block" if display else "inline")
    except Exception:  # latex2mathml raises its own and plain errors on TeX it cannot read
        return f'<code class="math-error">{escapeHtml(tex)}</code>'
    return _HREF.sub("", mathml)


def _math_plugin(md: MarkdownIt) -> None:
    """mdit-py-plugins' texmath rules (the bracket forms, and $$ blocks, but not single
    $), rendered by latex2mathml instead of texmath's own placeholder markup."""
    inline = [rules["brackets"]["inline"][0], _DISPLAY_INLINE]
    blocks = [
        {**rule, "name": f"{rule['name']}_{kind}"}
        for kind in ("brackets", "dollars")
        for rule in rules[kind]["block"]
    ]
    for rule in inline:
        md.inline.ruler.before("escape", rule["name"], make_inline_func(rule))  # type: ignore[arg-type]
        display = rule is _DISPLAY_INLINE
        md.add_render_rule(rule["name"], _renderer(display=display))
    for rule in blocks:
        md.block.ruler.before("fence", rule["name"], make_block_func(rule))  # type: ignore[arg-type]
        md.add_render_rule(rule["name"], _renderer(display=True, block=True))


def _renderer(*, display: bool, block: bool = False) -> Any:
    def render(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        html = _math(tokens[idx].content, display=display)
        return f'<div class="math">{html}</div>\n' if block else html

    return render


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return (
        MarkdownIt(
            "commonmark",
            {"html": False, "linkify": False, "typographer": False, "highlight": _highlight},
        )
        .enable(["table", "strikethrough"])
        .use(_math_plugin)
    )


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
