"""An answer's [n] markers: which sources it cites, and links to them in its HTML (never in
code, tags or attributes, never to a source that does not exist)."""

from __future__ import annotations

from hearth.chat.citations import cited_numbers, link_citations
from hearth.chat.markdown import render_markdown


def test_the_sources_an_answer_cites_in_order_once_each() -> None:
    text = "Hold the button [2]. Clean the filter [1, 2] and see [7] and [2]."
    assert cited_numbers(text, 3) == [2, 1]  # [7] names no source
    assert cited_numbers("No markers here.", 3) == []
    assert cited_numbers("[1]", 0) == []


def test_markers_become_links_outside_code_only() -> None:
    answer = "Reset it [1].\n\n`list[0]` and [3] and [1, 2].\n\n```python\nx = a[1]\n```\n"
    html = link_citations(render_markdown(answer), 42, 2)
    assert '[<a class="cite" href="#cite-42-1" aria-label="source 1">1</a>]' in html
    assert (
        '[<a class="cite" href="#cite-42-1" aria-label="source 1">1</a>, '
        '<a class="cite" href="#cite-42-2" aria-label="source 2">2</a>]'
    ) in html
    assert "[3]" in html  # no third source: left as written
    assert "<code>list[0]</code>" in html and 'href="#cite-42-1"' not in html.split("<pre")[1]
    assert html.count('class="cite"') == 3
    assert link_citations("<p>[1]</p>", 1, 0) == "<p>[1]</p>"
