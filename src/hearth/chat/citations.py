"""What an answer cites: its `[n]` markers, read from the text, and made into links to the
sources they name in the rendered HTML (never inside code, a tag or an attribute)."""

from __future__ import annotations

import re

_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# Code (kept as it is) and tags, so that only the text between them is looked at.
_SKIP = re.compile(r"(<pre\b.*?</pre>|<code\b.*?</code>|<[^>]*>)", re.S | re.I)


def cited_numbers(text: str, count: int) -> list[int]:
    """The sources (1-based, at most `count`) the answer's `[n]` or `[n, m]` name, in order."""
    seen: list[int] = []
    for match in _MARKER.finditer(text):
        for part in match.group(1).split(","):
            n = int(part)
            if 1 <= n <= count and n not in seen:
                seen.append(n)
    return seen


def link_citations(html: str, message_id: int, count: int) -> str:
    """`[n]` in the answer's text as a link to its source in the list below the answer."""
    if not count:
        return html

    def link(match: re.Match[str]) -> str:
        parts = [p.strip() for p in match.group(1).split(",")]
        if not all(1 <= int(p) <= count for p in parts):
            return match.group(0)  # a number with no source: left as the model wrote it
        links = ", ".join(
            f'<a class="cite" href="#cite-{message_id}-{p}" aria-label="source {p}">{p}</a>'
            for p in parts
        )
        return f"[{links}]"

    pieces = _SKIP.split(html)
    for i in range(0, len(pieces), 2):  # even pieces are text; odd ones code or tags
        pieces[i] = _MARKER.sub(link, pieces[i])
    return "".join(pieces)
