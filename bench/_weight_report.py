"""The tables `webapp_weight.py` prints (and bench/RESULTS.md shows): page weight per
resource type, cold and warm; load times; Open WebUI ÷ Hearth; title generation vs time to
first token."""

from __future__ import annotations

from _page_load import TYPES

DEFINITIONS = """\
Bytes: Resource Timing (document + every sub-resource, API calls included; WebSocket
traffic not counted): transferred = `transferSize` (headers included; 0 when the cache
answered without asking), decoded = `decodedBodySize`; medians over the loads.
Message box editable: the first animation frame at which the message box is rendered,
visible, enabled and editable, from navigation start. Interactive (TTI): the latest of
that, DOMContentLoaded and load, the last network response's end and the last long task's
end (> 50 ms), followed by {quiet:g} s with no request awaiting its response, no response
ending and no long task."""


def _kb(n: float) -> str:
    return f"{n / 1000:,.1f}"


def _columns(report: dict) -> list[tuple[str, str, dict]]:
    return [
        (system, page, modes)
        for system, pages in report.get("pages", {}).items()
        for page, modes in pages.items()
    ]


def render(report: dict) -> str:
    cols = _columns(report)
    if not cols and "titles" not in report:
        return "(nothing measured)"
    lines: list[str] = []
    head = " | ".join(f"{system}, {page}" for system, page, _ in cols)
    sep = "|---" * (len(cols) + 1) + "|"
    for mode, what in (("cold", "cold cache"), ("warm", "warm cache")):
        if not cols:
            break
        lines += [
            f"| {what}: requests · KB transferred · KB decoded (median of "
            f"{cols[0][2][mode]['loads']} loads) | {head} |",
            sep,
        ]
        for kind in (*TYPES, "total"):
            cells = []
            for _, _, modes in cols:
                n, sent, decoded, cached, revalidated = modes[mode]["by_type"][kind]
                cell = f"{n} · {_kb(sent)} · {_kb(decoded)}"
                if mode == "warm" and n:
                    cell += f" ({cached} cached, {revalidated} revalidated)"
                cells.append(cell)
            label = f"**{kind}**" if kind == "total" else kind
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    if cols:
        lines += [f"| time, ms from navigation start, p50 / p95 | {head} |", sep]
        for mode in ("cold", "warm"):
            for key, label in (
                ("fcp", "first contentful paint"),
                ("ready", "message box editable"),
                ("tti", "interactive (TTI)"),
            ):
                cells = [f"{m[mode][key]['p50_ms']} / {m[mode][key]['p95_ms']}" for _, _, m in cols]
                lines.append(f"| {label}, {mode} cache | " + " | ".join(cells) + " |")
            cells = [f"{m[mode]['long_task_ms']}" for _, _, m in cols]
            lines.append(
                f"| main-thread long tasks, ms, {mode} (median) | " + " | ".join(cells) + " |"
            )
            cells = [f"{m[mode]['settled']} / {m[mode]['loads']}" for _, _, m in cols]
            lines.append(f"| loads settled (TTI reached), {mode} | " + " | ".join(cells) + " |")
        lines += ["", *_ratios(report), ""]
        quiet = float(report.get("args", {}).get("quiet", 1.0))
        lines += [DEFINITIONS.format(quiet=quiet), ""]
    if "titles" in report:
        lines += _render_titles(report["titles"])
    loads = ", ".join(f"{load[0]:.2f}" for load in report["load"])
    lines += ["", f"1-minute load average at start and after each part: {loads}"]
    return "\n".join(lines)


def _ratios(report: dict) -> list[str]:
    pages = report.get("pages", {})
    h, o = pages.get("Hearth"), pages.get("Open WebUI")
    if not h or not o:
        return []
    lines = ["| Open WebUI ÷ Hearth | new chat | chat |", "|---|---|---|"]

    def ratio(*path: str | int) -> str:
        cells = []
        for page in ("new chat", "chat"):
            a, b = h[page], o[page]
            for step in path:
                a, b = a[step], b[step]
            cells.append(f"{b / a:.1f}x" if a and b else "—")
        return " | ".join(cells)

    for mode in ("cold", "warm"):
        lines.append(f"| bytes transferred, {mode} | {ratio(mode, 'by_type', 'total', 1)} |")
    lines.append(f"| bytes decoded | {ratio('cold', 'by_type', 'total', 2)} |")
    lines.append(f"| requests | {ratio('cold', 'by_type', 'total', 0)} |")
    for mode in ("cold", "warm"):
        for key, label in (("ready", "message box editable"), ("tti", "TTI")):
            lines.append(f"| {label}, {mode}, p50 | {ratio(mode, key, 'p50_ms')} |")
    return lines


def _render_titles(t: dict) -> list[str]:
    def row(label: str, key: str) -> str:
        c, s = t["ttft"][key], t["server_ttft"][key]
        return (
            f"| {label} | {c['n']} | {c['p50_ms']} / {c['p95_ms']} / {c['mean_ms']} | "
            f"{s['p50_ms']} / {s['p95_ms']} |"
        )

    def r(a: str, b: str, stat: str) -> str:
        x, y = t["ttft"][a][stat], t["ttft"][b][stat]
        return f"{x / y:.2f}" if x and y else "—"

    def paired(key: str) -> str:
        p = t.get("paired", {}).get(key)
        if not p or p["median"] is None:
            return "—"
        return f"{p['median']:.2f} ({p['above_1']} of {p['rounds']})"

    ti = t["titles"]
    lines = [
        f"| time to first token, ms ({t['rounds']} rounds, answers of at most "
        f"{t['max_tokens']} tokens) | chats | client p50 / p95 / mean | server p50 / p95 |",
        "|---|---|---|---|",
        row("first message, new chat (its title is written after the answer)", "new_first"),
        row("first message, chat created with a title (no title to write)", "titled_first"),
        row("second message, sent once the title was written", "new_second"),
        row("second message, sent the moment the first answer ended", "at_once_second"),
        "",
        "| ratio of time to first token | p50 | mean | per round: median (rounds above 1) |",
        "|---|---|---|---|",
        f"| new chat's first ÷ titled chat's first | {r('new_first', 'titled_first', 'p50_ms')}"
        f" | {r('new_first', 'titled_first', 'mean_ms')} | {paired('new_first/titled_first')} |",
        f"| new chat's first ÷ its second (titled by then; a longer prompt) | "
        f"{r('new_first', 'new_second', 'p50_ms')} | {r('new_first', 'new_second', 'mean_ms')}"
        " | |",
        f"| second at once ÷ second after the title | "
        f"{r('at_once_second', 'new_second', 'p50_ms')} | "
        f"{r('at_once_second', 'new_second', 'mean_ms')} | {paired('at_once/new_second')} |",
        "",
        "| the title request (server: usage rows) | value |",
        "|---|---|",
        f"| title requests overlapping the answer they title | {ti['overlapping_own_answer']} "
        f"of {ti['checked']} |",
        f"| started after that answer ended, ms, min / p50 / max | "
        f"{min(ti['gap_after_answer_ms']['all_ms'], default='—')} / "
        f"{ti['gap_after_answer_ms']['p50_ms']} / "
        f"{max(ti['gap_after_answer_ms']['all_ms'], default='—')} |",
        f"| its duration, ms, p50 / p95 | {ti['duration_ms']['p50_ms']} / "
        f"{ti['duration_ms']['p95_ms']} |",
        f"| new title visible (`GET /api/chats/{{id}}`) after `done`, ms, p50 / p95 | "
        f"{ti['seen_after_done_ms']['p50_ms']} / {ti['seen_after_done_ms']['p95_ms']} |",
        f"| second message sent at once: its answer overlapped by the title request | "
        f"{ti['overlapping_next_answer_at_once']} of {ti['at_once_chats']} |",
        f"| chats that kept their placeholder title | {ti['kept_placeholder']} |",
        f"| titles written (first five) | {'; '.join(ti['examples'])} |",
    ]
    return lines
