"""The gateway's own cost, side by side with LiteLLM's proxy, in one run on this machine.

One tiny fast upstream (`_fast_upstream.py`, a separate process: fixed JSON, or SSE with 20
content chunks) is called directly, through `hearth serve` (one process, an `openai`
engine, no local model), through the same with an API key and the Redis limiter (the
realistic multi-replica configuration), and through LiteLLM's proxy (one worker).

- maximum sustained rate: wrk (one thread, 32 connections, a Lua POST), non-streaming and
  streaming; the CPU each process used per request, from /proc;
- added latency at a fixed rate: an open-loop generator (`_openloop.py`), latency from the
  planned send time, p50/p99, minus the direct figures; for streams, time to first chunk.
  Measured twice: each target alone after its other measurements, then at the end, each
  target taking turns with direct calls in 2-second blocks (`paired`), so that both see
  the machine in the same state (this one's run-to-run drift is a few tenths of a ms);
- chunks passed on as they arrive: the upstream waits 20 ms between chunks (`mock-gap20`),
  the client timestamps each event; a gap under 10 ms means chunks were held and batched;
- memory: RSS after warm-up, then after N more requests;
- what Hearth says it added, beside what the client measured in the same turns: the
  `x-hearth-overhead-ms` header (first byte read → response head, less the engine's time)
  and the histograms `hearth_gateway_added_seconds` (→ last byte written) and
  `hearth_gateway_overhead_seconds`, read from /metrics before and after.

Runs from the venv of `make dev`, or of `pip install -e .` alone (standard library and
Hearth's own dependencies only). Needs Debian's `wrk` and `redis-server` (for hearth+key)
on PATH. Servers listen on 127.0.0.1, on free ports the OS picks, or from `--port-base N`
up in this order: the upstream, relay, hearth, redis, hearth+key, litellm (those chosen).

LiteLLM goes in its own venv (see ../shared/PEERS.md), by default /work/peers/litellm
(`--litellm-venv`):
    python3 -m venv /work/peers/litellm
    /work/peers/litellm/bin/pip install 'litellm[proxy]==1.106.2' aiohttp
Run:
    .venv/bin/python bench/gateway_speed.py --duration 10 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _openloop import OpenLoop, Result, post
from _procs import (
    Ports,
    Service,
    add_port_base,
    get_text,
    pct,
    spawn,
    start_fast_upstream,
    wait_ready,
)
from _prom import histogram

from hearth.db.embedded import EmbeddedPostgres

HERE = Path(__file__).resolve().parent
CHAT = "/v1/chat/completions"
LITELLM_VENV = Path("/work/peers/litellm")
# What Hearth reports of its own time, read from /metrics around the turns with direct.
REPORTED = ("hearth_gateway_added_seconds", "hearth_gateway_overhead_seconds")
MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]


def body(model: str = "mock", *, stream: bool = False) -> bytes:
    payload: dict = {"model": model, "messages": MESSAGES, "max_tokens": 32}
    if stream:
        payload["stream"] = True
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass
class Target:
    name: str
    port: int
    service: Service | None  # None: the upstream itself
    headers: dict[str, str] = field(default_factory=dict)
    results: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{CHAT}"


# --- wrk ---------------------------------------------------------------------------------

WRK_LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{headers}
"""


def wrk(
    target: Target,
    payload: bytes,
    *,
    duration: float,
    connections: int,
    work: Path,
) -> dict:
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in target.headers.items())
    script = work / f"wrk-{secrets.token_hex(4)}.lua"
    script.write_text(WRK_LUA.format(body=json.dumps(payload.decode()), headers=headers))
    # --timeout: wrk's default (2 s) would drop a slow server's answers from the count.
    args = ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--timeout", "30s"]
    args += ["--latency", "-s"]
    out = subprocess.run(
        [*args, str(script), target.url], capture_output=True, text=True, check=True
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out)[1])
    found = re.search(r"requests in ([\d.]+)(ms|s|m)\b", out)
    seconds = float(found[1]) * {"ms": 0.001, "s": 1, "m": 60}[found[2]]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    lat = {}
    for q in ("50", "99"):
        found = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)", out, re.M)
        value, unit = float(found[1]), found[2]
        lat[q] = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    return {
        "requests": requests,
        "rps": requests / seconds,
        "p50_ms": lat["50"],
        "p99_ms": lat["99"],
        "non2xx": int(errors[1]) if errors else 0,
        "socket_errors": socket_errors[1] if socket_errors else "",
    }


def measured(services: list[Service], run) -> tuple[dict, dict[str, float]]:
    """Run `run()`, and the CPU seconds each service used meanwhile."""
    before = {s.name: s.cpu() for s in services}
    result = run()
    return result, {s.name: round(s.cpu() - before[s.name], 2) for s in services}


# --- open loop -----------------------------------------------------------------------------


def open_loop(target: Target, payload: bytes, *, rate: float, count: int) -> list[Result]:
    async def main() -> list[Result]:
        client = OpenLoop("127.0.0.1", target.port)
        try:
            await client.run(post(CHAT, payload, target.headers), rate=rate, count=min(20, count))
            return await client.run(post(CHAT, payload, target.headers), rate=rate, count=count)
        finally:
            await client.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


BLOCK = 100  # requests per block when two targets take turns (2 s at 50/s)
BLOCK_SKIP = 2  # the first of each block, after the target sat idle for a block


def paired_open_loop(
    targets: tuple[Target, Target], payload: bytes, *, rate: float, count: int
) -> tuple[list[Result], list[Result]]:
    """`open_loop` on two targets taking turns in short blocks (`BLOCK` requests at
    `rate`, the order flipping each round), so that a drift of the machine's state over a
    run (load, CPU frequency, the host's other guests) lands on both alike. Each target
    still meets requests `1/rate` apart, as when measured alone; interleaving single
    requests would not do that (the client and the upstream would see twice the rate,
    and direct calls gained from it more than Hearth did)."""

    async def main() -> tuple[list[Result], list[Result]]:
        clients = [OpenLoop("127.0.0.1", target.port) for target in targets]
        raws = [post(CHAT, payload, target.headers) for target in targets]
        found: tuple[list[Result], list[Result]] = ([], [])
        try:
            for client, raw in zip(clients, raws, strict=True):
                await client.run(raw, rate=rate, count=min(20, count))
            for round_ in range(max(1, count // BLOCK)):
                for i in (0, 1) if round_ % 2 == 0 else (1, 0):
                    block = await clients[i].run(raws[i], rate=rate, count=BLOCK)
                    found[i].extend(block[BLOCK_SKIP:])
            return found
        finally:
            for client in clients:
                await client.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


def paired(direct: Target, target: Target, *, rate: float, count: int) -> dict:
    """Added latency of `target` over `direct`, the two taking turns (`paired_open_loop`):
    p50 and p99 of each, JSON and the first chunk of a stream; for Hearth, beside what it
    reported of the same requests (`reported`)."""
    out = {}
    for kind, payload in (("json", body()), ("sse", body(stream=True))):
        before = scrape(target)
        mine, theirs = paired_open_loop((target, direct), payload, rate=rate, count=count)
        after = scrape(target)
        a, b = latency_summary(mine), latency_summary(theirs)
        key = "p50_ms" if kind == "json" else "ttft_p50_ms"
        key99 = "p99_ms" if kind == "json" else "ttft_p99_ms"
        out[kind] = {
            "direct_p50_ms": b[key],
            "p50_ms": a[key],
            "added_p50_ms": a[key] - b[key],
            "direct_p99_ms": b[key99],
            "p99_ms": a[key99],
            "added_p99_ms": a[key99] - b[key99],
            "failed": a["failed"] + b["failed"],
            "header_p50_ms": a["header_p50_ms"],
        } | reported(before, after)
    return out


def scrape(target: Target) -> str | None:
    """Hearth's /metrics now (None for other targets)."""
    if not target.name.startswith("hearth"):
        return None
    return get_text(f"http://127.0.0.1:{target.port}/metrics")


def reported(before: str | None, after: str | None) -> dict:
    """Mean and median (within buckets) of what Hearth's histograms observed between two
    scrapes, in ms (the warm-up requests included)."""
    if before is None or after is None:
        return {}
    out: dict = {}
    for name in REPORTED:
        seen = histogram(after, name) - histogram(before, name)
        short = "hist_" + name.removeprefix("hearth_gateway_").removesuffix("_seconds")
        out[f"{short}_mean_ms"] = seen.mean() * 1000
        out[f"{short}_p50_ms"] = seen.quantile(0.5) * 1000
        out[f"{short}_count"] = seen.count
    return out


def latency_summary(results: list[Result]) -> dict:
    ok = [r for r in results if r.status == 200 and r.error is None]
    lat = [r.latency * 1000 for r in ok]
    ttft = [r.ttft * 1000 for r in ok if r.ttft is not None]
    headers = [r.overhead_ms for r in ok if r.overhead_ms is not None]
    failures = Counter(
        r.error or f"status {r.status}" for r in results if r.status != 200 or r.error
    )
    return {
        "ok": len(ok),
        "failed": len(results) - len(ok),
        "failures": dict(failures.most_common(3)),
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "ttft_p50_ms": pct(ttft, 50),
        "ttft_p99_ms": pct(ttft, 99),
        "header_p50_ms": pct(headers, 50),  # x-hearth-overhead-ms
    }


def gap_summary(results: list[Result], content_events: int = 20) -> dict:
    """Client-side gaps between consecutive content events of each stream."""
    gaps = []
    for r in results:
        if r.status != 200:
            continue
        times = r.events[:content_events]
        gaps += [(b - a) * 1000 for a, b in itertools.pairwise(times)]
    return {
        "gaps": len(gaps),
        "gap_p1_ms": pct(gaps, 1),
        "gap_p50_ms": pct(gaps, 50),
        "gap_p99_ms": pct(gaps, 99),
        "batched": sum(1 for g in gaps if g < 10),
    }


# --- the run -----------------------------------------------------------------------------


def start_hearth(
    name: str, work: Path, port: int, upstream: int, database_url: str, extra: dict[str, str]
) -> tuple[Service, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    engines = [
        {"kind": "openai", "name": "upstream", "base_url": f"http://127.0.0.1:{upstream}/v1"}
    ]
    env |= {
        "HEARTH_DATA_DIR": str(work / "data"),
        "HEARTH_DATABASE_URL": database_url,
        "HEARTH_ENGINES": json.dumps(engines),
        **extra,
    }
    args = [sys.executable, "-m", "hearth", "serve", "--port", str(port)]
    service = spawn(name, args, env, work / f"{name}.log")
    wait_ready(f"http://127.0.0.1:{port}/readyz", service.popen, time.monotonic())
    return service, port


def create_key(work: Path, database_url: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env |= {"HEARTH_DATA_DIR": str(work / "data"), "HEARTH_DATABASE_URL": database_url}
    # Limits high enough never to refuse, each of a kind that costs a Redis round trip to
    # admit (requests, tokens, concurrency) and one to settle (tokens, concurrency).
    args = ["--rpm", "100000000", "--tpm", "1000000000", "--concurrency", "100000"]
    out = subprocess.run(
        [sys.executable, "-m", "hearth", "keys", "create", "bench", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return re.search(r"hk-\S+", out)[0]


def start_litellm(
    work: Path, port: int, upstream: int, master: str, venv: Path
) -> tuple[Service, int]:
    binary = venv / "bin" / "litellm"
    if not binary.exists():
        raise SystemExit(
            f"{binary} not found: install LiteLLM there (see this script's docstring) "
            "or give its venv with --litellm-venv"
        )
    config = work / "litellm.yaml"
    models = "\n".join(
        f"  - model_name: {m}\n    litellm_params: {{model: openai/{m}, "
        f'api_base: "http://127.0.0.1:{upstream}/v1", api_key: unused}}'
        for m in ("mock", "mock-gap20")
    )
    config.write_text(
        f"model_list:\n{models}\n"
        "litellm_settings: {telemetry: false, drop_params: true, request_timeout: 30}\n"
    )
    env = os.environ | {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "LITELLM_MASTER_KEY": master,
    }
    args = [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    service = spawn("litellm", [*args, "--num_workers", "1"], env, work / "litellm.log")
    wait_ready(
        f"http://127.0.0.1:{port}/health/liveliness", service.popen, time.monotonic(), timeout=180
    )
    return service, port


def postgres_service(pgdata: Path) -> Service:
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    return Service("postgres", pid)


def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="gateway-speed-"))
    services: list[Service] = []
    report: dict = {"load_before": os.getloadavg(), "targets": {}, "paired": {}}
    embedded = EmbeddedPostgres(work / "data")
    ports = Ports(args.port_base)
    try:
        upstream, upstream_port = start_fast_upstream(work, ports("upstream"))
        services.append(upstream)
        database_url = asyncio.run(embedded.start())
        services.append(postgres_service(work / "data" / "postgres"))

        chosen = set(args.targets.split(","))
        targets = [Target("direct", upstream_port, None)] if "direct" in chosen else []
        if "relay" in chosen:
            # The floor under any gateway: bytes relayed by a bare Python process.
            port = ports("relay")
            relay = spawn(
                "relay",
                [sys.executable, str(HERE / "_tcp_relay.py"), str(port), str(upstream_port)],
                dict(os.environ),
                work / "relay.log",
            )
            services.append(relay)
            time.sleep(0.5)
            targets.append(Target("relay", port, relay))
        if "hearth" in chosen:
            hearth, port = start_hearth(
                "hearth", work, ports("hearth"), upstream_port, database_url, {}
            )
            services.append(hearth)
            targets.append(Target("hearth", port, hearth))
        if "hearth+key" in chosen:
            redis_port = ports("redis")
            redis = spawn(
                "redis",
                ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                dict(os.environ),
                work / "redis.log",
            )
            services.append(redis)
            time.sleep(0.5)
            key = create_key(work, database_url)
            keyed, port = start_hearth(
                "hearth+key",
                work,
                ports("hearth+key"),
                upstream_port,
                database_url,
                {
                    "HEARTH_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                    "HEARTH_REQUIRE_API_KEY": "true",
                },
            )
            services.append(keyed)
            targets.append(Target("hearth+key", port, keyed, {"Authorization": f"Bearer {key}"}))
        if "litellm" in chosen:
            master = "sk-bench-" + secrets.token_hex(16)
            litellm, port = start_litellm(
                work, ports("litellm"), upstream_port, master, args.litellm_venv
            )
            services.append(litellm)
            targets.append(Target("litellm", port, litellm, {"Authorization": f"Bearer {master}"}))

        if args.serve:
            for target in targets:
                pid = target.service.pid if target.service else upstream.pid
                print(f"{target.name}: {target.url} pid {pid} {target.headers}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(args.serve)
            return report
        for target in targets:
            print(f"--- {target.name}", flush=True)
            measure(target, services, args, work)
            report["targets"][target.name] = target.results
        # Added latency again, each target taking turns with direct calls (see `paired`).
        count = int(args.rate * args.latency_seconds)
        direct = next((t for t in targets if t.name == "direct"), None)
        for target in targets:
            if direct is not None and target is not direct:
                print(f"--- {target.name} and direct, taking turns", flush=True)
                report["paired"][target.name] = found = paired(
                    direct, target, rate=args.rate, count=count
                )
                print(f"  {json.dumps(found)}", flush=True)
        report["load_after"] = os.getloadavg()
        return report
    finally:
        for service in reversed(services):
            service.stop()
        asyncio.run(embedded.stop())
        if args.keep:
            print(f"logs in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def measure(target: Target, services: list[Service], args: argparse.Namespace, work: Path) -> None:
    res = target.results = _Progress()
    slow = target.name == "litellm"
    # Warm up (imports, connection pools, caches), then the maximum rates.
    wrk(target, body(), duration=5, connections=args.connections, work=work)
    for kind, payload in (("json", body()), ("sse", body(stream=True))):
        result, cpu = measured(
            services,
            lambda payload=payload: wrk(
                target, payload, duration=args.duration, connections=args.connections, work=work
            ),
        )
        result["cpu_s"] = cpu
        if target.service is not None:
            done = max(result["requests"], 1)
            result["cpu_ms_per_request"] = cpu[target.service.name] * 1000 / done
        res[f"max_{kind}"] = result
    # Added latency at a fixed rate.
    count = int(args.rate * args.latency_seconds)
    res["fixed_json"] = latency_summary(open_loop(target, body(), rate=args.rate, count=count))
    res["fixed_sse"] = latency_summary(
        open_loop(target, body(stream=True), rate=args.rate, count=count)
    )
    gaps = open_loop(target, body("mock-gap20", stream=True), rate=args.rate, count=count // 2)
    res["gaps"] = latency_summary(gaps) | gap_summary(gaps)
    # Memory: after all of the above as warm-up, N more requests.
    if target.service is not None:
        n = args.litellm_memory_requests if slow else args.memory_requests
        seconds = max(2, math.ceil(n / max(res["max_json"]["rps"], 1)))
        before = target.service.rss()
        result, cpu = measured(
            services,
            lambda: wrk(target, body(), duration=seconds, connections=args.connections, work=work),
        )
        after = target.service.rss()
        res["memory"] = {
            "requests": result["requests"],
            "rss_before_mb": before / 2**20,
            "rss_after_mb": after / 2**20,
            "growth_pct": (after - before) * 100 / before,
            "rps": result["rps"],
        }


class _Progress(dict):
    """Prints each measurement as it is made: a long run shows where it is."""

    def __setitem__(self, key: str, value: object) -> None:
        print(f"  {key}: {json.dumps(value)}", flush=True)
        super().__setitem__(key, value)


def table(report: dict) -> str:
    """Markdown: one column per target; added latency against direct, rates against LiteLLM."""
    t = report["targets"]
    direct, litellm = t.get("direct"), t.get("litellm")
    lines = ["| | " + " | ".join(t) + " |", "|---" * (len(t) + 1) + "|"]

    def row(label: str, get, fmt: str = "{:.0f}", *, added: bool = False, ratio: bool = False):
        cells = []
        for name, res in t.items():
            try:
                value = get(res)
            except KeyError:
                cells.append("—")
                continue
            cell = fmt.format(value)
            if added and direct and name != "direct":
                cell += f" (+{value - get(direct):.2f})"
            if ratio and litellm and name.startswith("hearth"):
                cell += f" ({value / get(litellm):.1f}x LiteLLM)"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    ms = "{:.2f}"
    row("max requests/s, JSON", lambda r: r["max_json"]["rps"], ratio=True)
    row("  p50 ms at that rate (wrk)", lambda r: r["max_json"]["p50_ms"], ms)
    row("  p99 ms at that rate (wrk)", lambda r: r["max_json"]["p99_ms"], ms)
    row("max requests/s, SSE 20 chunks", lambda r: r["max_sse"]["rps"], ratio=True)
    row("CPU ms per request, JSON", lambda r: r["max_json"]["cpu_ms_per_request"], ms)
    row("CPU ms per request, SSE", lambda r: r["max_sse"]["cpu_ms_per_request"], ms)
    row("fixed rate, JSON p50 ms", lambda r: r["fixed_json"]["p50_ms"], ms, added=True)
    row("fixed rate, JSON p99 ms", lambda r: r["fixed_json"]["p99_ms"], ms, added=True)
    first = "fixed rate, SSE first chunk"
    row(f"{first} p50 ms", lambda r: r["fixed_sse"]["ttft_p50_ms"], ms, added=True)
    row(f"{first} p99 ms", lambda r: r["fixed_sse"]["ttft_p99_ms"], ms, added=True)
    row("fixed rate, SSE last chunk p50 ms", lambda r: r["fixed_sse"]["p50_ms"], ms, added=True)
    row("20 ms gaps at the client: p1 ms", lambda r: r["gaps"]["gap_p1_ms"], "{:.1f}")
    row("  p50 ms", lambda r: r["gaps"]["gap_p50_ms"], "{:.1f}")
    row("  p99 ms", lambda r: r["gaps"]["gap_p99_ms"], "{:.1f}")
    row("  under 10 ms (two chunks together)", lambda r: r["gaps"]["batched"])
    row("  of", lambda r: r["gaps"]["gaps"])
    pairs = report.get("paired", {})
    for kind, label in (("json", "JSON"), ("sse", "SSE first chunk")):
        for stat in ("p50", "p99"):
            cells = []
            for name in t:
                pair = pairs.get(name, {}).get(kind)
                if pair is None:
                    cells.append("—")
                    continue
                mine, added = pair[f"{stat}_ms"], pair[f"added_{stat}_ms"]
                cells.append(f"{mine:.2f} ({added:+.2f} over {pair[f'direct_{stat}_ms']:.2f})")
            title = f"in turns with direct, {label} {stat} ms"
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
    # What Hearth reported of the same requests, against what the client measured.
    reports = (
        ("x-hearth-overhead-ms p50", "{header_p50_ms:.2f}"),
        (
            "hearth_gateway_overhead_seconds mean (p50)",
            "{hist_overhead_mean_ms:.2f} ({hist_overhead_p50_ms:.2f})",
        ),
        (
            "hearth_gateway_added_seconds mean (p50)",
            "{hist_added_mean_ms:.2f} ({hist_added_p50_ms:.2f})",
        ),
    )
    for kind, label in (("json", "JSON"), ("sse", "SSE")):
        for title, fmt in reports:
            cells = []
            for name in t:
                pair = pairs.get(name, {}).get(kind)
                cells.append(fmt.format(**pair) if pair and "hist_added_count" in pair else "—")
            lines.append(f"| in turns, {label}: {title} ms | " + " | ".join(cells) + " |")
    row("RSS MB after warm-up", lambda r: r["memory"]["rss_before_mb"], "{:.1f}")
    row("RSS MB after N more requests", lambda r: r["memory"]["rss_after_mb"], "{:.1f}")
    row("  N", lambda r: r["memory"]["requests"])
    row("  growth %", lambda r: r["memory"]["growth_pct"], "{:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=50, help="requests/s, open loop")
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--litellm-memory-requests", type=int, default=5_000)
    parser.add_argument(
        "--targets",
        default="direct,hearth,hearth+key,litellm",
        help="which of direct, relay (a bare byte relay: the floor of one more process),"
        " hearth, hearth+key (API key, Redis limiter), litellm",
    )
    parser.add_argument(
        "--litellm-venv",
        type=Path,
        default=LITELLM_VENV,
        metavar="DIR",
        help=f"the venv LiteLLM's proxy is installed in (default: {LITELLM_VENV})",
    )
    add_port_base(parser)
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    parser.add_argument(
        "--serve", type=float, metavar="SECONDS", help="only start the servers (to profile)"
    )
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args()
    # SIGTERM as an exception, so that `run` stops what it started (PostgreSQL included).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    report = run(args)
    if args.serve:
        return
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(f"load average before {report['load_before']}, after {report['load_after']}")
    print(table(report))


if __name__ == "__main__":
    main()
