"""Answers' Markdown on the server: raw HTML escaped, code highlighted, TeX math as MathML."""

from __future__ import annotations

import pytest

from hearth.chat.markdown import render_markdown


def test_raw_html_is_escaped_and_code_highlighted() -> None:
    html = render_markdown("<script>alert(1)</script>\n\n```python\nx = 1\n```")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<span class="n">x</span>' in html


@pytest.mark.parametrize(
    ("text", "display"),
    [
        (r"The area is \(\pi r^2\) here.", "inline"),
        ("Block:\n\n\\[\n\\int_0^1 x\\,dx\n\\]\n", "block"),
        ("Block:\n\n$$\n\\frac{1}{2}\n$$\n", "block"),
        ("Said in a sentence $$E = mc^2$$ too.", "block"),
    ],
)
def test_tex_becomes_mathml(text: str, display: str) -> None:
    html = render_markdown(text)
    assert f'<math xmlns="http://www.w3.org/1998/Math/MathML" display="{display}">' in html
    assert "\\(" not in html and "$$" not in html and "\\[" not in html


def test_what_is_not_math_stays_text() -> None:
    # A single dollar is money, code is code, and TeX it cannot read is shown as written.
    assert render_markdown("It costs $5 and $10.") == "<p>It costs $5 and $10.</p>\n"
    assert "<math" not in render_markdown("`\\(x\\)` in code")
    broken = render_markdown(r"\(\begin{nothing}\)")
    assert "<math" not in broken and 'class="math-error"' in broken


def test_math_carries_no_link() -> None:
    html = render_markdown(r"\(\href{javascript:alert(1)}{x}\)")
    assert "<math" in html and "javascript" not in html
