"""Does writing a chat's title cost its answer anything? Hearth's model writes a new chat's
title from the first exchange, after the answer has ended (hearth.chat.titles): this
measures the answer's time to first token with and without a title to write, through the
chat API (`POST /api/chats/{id}/messages`, server-sent events `question`, `delta`...,
`done`), on the real local model of `hearth up`.

Each round starts three chats, in an order that rotates from round to round, each with a
question of its own (no two prompts share more than the chat template, so that no
answer starts from another's cached prompt), every chat at temperature 0 and a short
answer (`max_tokens`):
- **new**: created untitled, so its first answer is followed by the title request; once
  the title is written (seen in `GET /api/chats/{id}`), a second message;
- **titled**: created with a title, so its first answer has no title to follow it: the
  same shape of prompt as new's first, the control;
- **at once**: untitled like new, its second message sent the moment the first answer's
  `done` arrives, while the title is being written: what a quick second question meets.

Time to first token is client-side: the POST sent → the first `delta` event. When the
title request ran, and whether it overlapped an answer, comes from Hearth's usage rows
(one per model call, written as it ends, with its latency: the call's start is its end
minus its latency; an answer is streamed and has a `call_id`, the title request is not).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from _procs import pct

if TYPE_CHECKING:
    import httpx

TOPICS = [
    "tides", "rainbows", "volcanoes", "glaciers", "comets", "coral reefs", "deserts",
    "thunder", "earthquakes", "auroras", "monsoons", "geysers", "fjords", "meteors",
    "hurricanes", "caves", "lightning", "icebergs", "sand dunes", "eclipses", "wetlands",
    "waterfalls", "fog", "hailstones", "canyons", "rivers", "tornadoes", "lagoons",
    "snowflakes", "islands", "avalanches", "estuaries", "plateaus", "deltas", "oases",
    "reef fish", "mountains", "prairies", "tundra", "savannas", "mangroves", "atolls",
    "lakes", "cliffs", "bays", "peninsulas", "valleys", "marshes",
]  # fmt: skip
QUESTION = "In two short sentences, what causes {topic}?"
FOLLOW_UP = "Say that again in one sentence for a child."
KINDS = ("new", "titled", "at_once")


@dataclass
class Turn:
    """One message and its answer, as the client saw it (wall clock: time.time())."""

    sent: float
    ttft_ms: float | None  # POST sent → first `delta`
    question_ms: float | None  # → `question` (stored, generation started)
    done_ms: float | None  # → `done`
    done_at: float = 0.0


@dataclass
class ChatRun:
    kind: str
    chat_id: str
    turns: list[Turn] = field(default_factory=list)
    title: str = ""
    title_seen_ms: float | None = None  # `done` of the first answer → the new title read


def send(client: httpx.Client, chat_id: str, text: str) -> Turn:
    """Send `text`, read the answer's events to the end."""
    sent, started = time.time(), time.perf_counter()
    marks: dict[str, float] = {}
    with client.stream("POST", f"/api/chats/{chat_id}/messages", json={"content": text}) as r:
        assert r.status_code == 200, r.read()[:300]
        for line in r.iter_lines():
            for name in ("question", "delta", "done", "error"):
                if name not in marks and line == f"event: {name}":
                    marks[name] = (time.perf_counter() - started) * 1000
    assert "error" not in marks and "done" in marks, marks
    return Turn(
        sent,
        marks.get("delta"),
        marks.get("question"),
        marks.get("done"),
        done_at=sent + marks["done"] / 1000,
    )


def new_chat(client: httpx.Client, *, title: str, max_tokens: int) -> str:
    r = client.post("/api/chats", json={"title": title})
    r.raise_for_status()
    chat_id = r.json()["id"]
    r = client.patch(f"/api/chats/{chat_id}", json={"temperature": 0, "max_tokens": max_tokens})
    r.raise_for_status()
    return chat_id


def wait_for_title(client: httpx.Client, run: ChatRun, placeholder: str, timeout: float) -> None:
    """Until the chat's title is no longer its question's first words (or `timeout`)."""
    done_at = run.turns[0].done_at
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        title = client.get(f"/api/chats/{run.chat_id}").json()["title"]
        if title != placeholder:
            run.title, run.title_seen_ms = title, (time.time() - done_at) * 1000
            return
        time.sleep(0.05)
    run.title = placeholder


def run_round(
    client: httpx.Client, n: int, *, max_tokens: int, title_timeout: float
) -> list[ChatRun]:
    runs = []
    order = KINDS[n % 3 :] + KINDS[: n % 3]
    for k, kind in enumerate(order):
        question = QUESTION.format(topic=TOPICS[(3 * n + k) % len(TOPICS)])
        preset = f"Bench chat {n}-{kind}" if kind == "titled" else ""
        run = ChatRun(kind, new_chat(client, title=preset, max_tokens=max_tokens))
        run.turns.append(send(client, run.chat_id, question))
        if kind == "at_once":
            run.turns.append(send(client, run.chat_id, FOLLOW_UP))
        if kind != "titled":
            wait_for_title(client, run, question, title_timeout)
        if kind == "new":
            run.turns.append(send(client, run.chat_id, FOLLOW_UP))
        runs.append(run)
    return runs


@dataclass
class Call:
    """One model call from Hearth's usage rows (wall clock, seconds)."""

    start: float
    end: float
    streamed: bool
    ttft_ms: float | None
    tokens: int


async def _calls(database_url: str, since: datetime) -> list[Call]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT created_at, latency_ms, ttft_ms, call_id IS NOT NULL AS streamed,"
            " completion_tokens FROM usage_record WHERE endpoint = 'chat' AND NOT estimated"
            " AND created_at >= $1 ORDER BY created_at",
            since,
        )
    finally:
        await conn.close()
    out = []
    for row in rows:
        end = row["created_at"].timestamp()
        out.append(
            Call(
                end - row["latency_ms"] / 1000,
                end,
                row["streamed"],
                row["ttft_ms"],
                row["completion_tokens"],
            )
        )
    return out


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50), 1) if values else None,
        "p95_ms": round(pct(values, 95), 1) if values else None,
        "mean_ms": round(statistics.fmean(values), 1) if values else None,
        "all_ms": [round(v, 1) for v in values],
    }


def _answer_of(turn: Turn, calls: list[Call]) -> Call | None:
    """The streamed call that answered `turn`: it ran within the client's view of it."""
    for call in calls:
        if call.streamed and call.start >= turn.sent - 0.05 and call.end <= turn.done_at + 0.05:
            return call
    return None


def analyse(runs: list[ChatRun], calls: list[Call]) -> dict[str, Any]:
    def ttfts(kind: str, index: int) -> list[float]:
        return [
            r.turns[index].ttft_ms
            for r in runs
            if r.kind == kind and len(r.turns) > index and r.turns[index].ttft_ms is not None
        ]

    out: dict[str, Any] = {
        "ttft": {
            "new_first": _summary(ttfts("new", 0)),
            "titled_first": _summary(ttfts("titled", 0)),
            "new_second": _summary(ttfts("new", 1)),
            "at_once_second": _summary(ttfts("at_once", 1)),
        },
        "server_ttft": {},
    }
    # Server-side TTFT (the gateway's, from the usage rows) of the same answers.
    for key, kind, index in (
        ("new_first", "new", 0),
        ("titled_first", "titled", 0),
        ("new_second", "new", 1),
        ("at_once_second", "at_once", 1),
    ):
        values = []
        for r in runs:
            if r.kind == kind and len(r.turns) > index:
                call = _answer_of(r.turns[index], calls)
                if call is not None and call.ttft_ms is not None:
                    values.append(call.ttft_ms)
        out["server_ttft"][key] = _summary(values)
    # Paired: each round's ratio, so that what the machine did during a round cancels.
    paired: dict[str, list[float]] = {"new_first/titled_first": [], "at_once/new_second": []}
    for n in range(0, len(runs), len(KINDS)):
        got = {r.kind: r for r in runs[n : n + len(KINDS)]}
        new, titled, at_once = got["new"].turns, got["titled"].turns, got["at_once"].turns
        if new[0].ttft_ms and titled[0].ttft_ms:
            paired["new_first/titled_first"].append(new[0].ttft_ms / titled[0].ttft_ms)
        if len(new) > 1 and len(at_once) > 1 and new[1].ttft_ms and at_once[1].ttft_ms:
            paired["at_once/new_second"].append(at_once[1].ttft_ms / new[1].ttft_ms)
    out["paired"] = {
        key: {
            "median": round(statistics.median(v), 2) if v else None,
            "above_1": sum(x > 1 for x in v),
            "rounds": len(v),
        }
        for key, v in paired.items()
    }
    titles = [c for c in calls if not c.streamed]
    gaps, durations, own, later, untitled = [], [], 0, 0, 0
    checked = 0
    for r in runs:
        if r.kind == "titled":
            continue
        first = r.turns[0]
        answer = _answer_of(first, calls)
        title = next((c for c in titles if first.sent - 0.05 <= c.start <= first.done_at + 5), None)
        if answer is None or title is None:
            continue
        checked += 1
        gaps.append((title.start - answer.end) * 1000)
        durations.append((title.end - title.start) * 1000)
        own += title.start < answer.end
        if r.title_seen_ms is None:
            untitled += 1
        if r.kind == "at_once" and len(r.turns) > 1:
            second = _answer_of(r.turns[1], calls)
            if second is not None and title.start < second.end and second.start < title.end:
                later += 1
    titled_after = [r.title_seen_ms for r in runs if r.title_seen_ms is not None]
    out["titles"] = {
        "requests": len(titles),
        "checked": checked,
        "overlapping_own_answer": own,
        "overlapping_next_answer_at_once": later,
        "at_once_chats": sum(1 for r in runs if r.kind == "at_once"),
        "gap_after_answer_ms": _summary(gaps),
        "duration_ms": _summary(durations),
        "seen_after_done_ms": _summary(titled_after),
        "kept_placeholder": untitled,
        "examples": [r.title for r in runs if r.kind == "new"][:5],
    }
    return out


def measure(
    client: httpx.Client,
    database_url: str,
    *,
    rounds: int,
    max_tokens: int,
    title_timeout: float = 30.0,
    log: Any = print,
) -> dict[str, Any]:
    since = datetime.now().astimezone()
    # A warm-up exchange: the model's first request pays for loading and graph set-up.
    warm = new_chat(client, title="warm-up", max_tokens=max_tokens)
    send(client, warm, QUESTION.format(topic="clouds"))
    runs: list[ChatRun] = []
    for n in range(rounds):
        runs += run_round(client, n, max_tokens=max_tokens, title_timeout=title_timeout)
        log(
            f"titles: round {n + 1}/{rounds}: "
            + ", ".join(f"{r.kind} {r.turns[0].ttft_ms:.0f} ms" for r in runs[-3:])
        )
    time.sleep(2.5)  # usage rows are written within a second or so (batched)
    calls = asyncio.run(_calls(database_url, since))
    return analyse(runs, calls) | {"rounds": rounds, "max_tokens": max_tokens}
