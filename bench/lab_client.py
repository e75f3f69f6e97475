"""The lab's load generator beside its peers, in one run on this machine ("benchmark the
benchmarker", issue 20): Hearth's lab (its Runner in a process of its own, with a MemoryStore:
`_lab_hearth.py`), GuideLLM and `vllm bench serve`, one after another against the same no-op
streaming server (`_lab_upstream.py`: raw asyncio, pre-built answers of 20 chunks, a core of
its own to out-run them). Every client streams chat completions, asks for 20 output tokens
with a 32-token synthetic prompt (all-MiniLM-L6-v2's tokenizer, offline) and gets usage.
How each client is run and read back: `_lab_clients.py`; the results: bench/RESULTS.md.

- max: the highest rate one client drives: `--requests` as fast as they go, 512 in flight
  at most (Hearth: a throughput stage, on asyncio's loop as `hearth bench run` has it, and on
  uvloop; GuideLLM: throughput@512 with its default worker processes and with one; vLLM:
  `--request-rate inf --max-concurrency 512`). Completions per second between the first and
  the last completion, and the CPU seconds per request the client's process tree used in that
  window (sampled from /proc every 50 ms) and over its whole command (start-up, prompt
  making and report included, from its rusage).
- rate: constant `--rates` for `--duration` s each: the dispatch delay (actual send - planned
  send) p50/p99 and the achieved send rate, over the middle 80% of requests in schedule order
  for every client. Hearth and GuideLLM record their plan; vLLM does not, so its delay is
  inferred from its start times against its own schedule (the origin set by its least late
  request: a lower bound). Beside it, the machine's own timer lateness (`time.sleep(1 ms)`
  in an idle thread of this process) measured meanwhile, the floor no client can beat.
- agree: against `timed-50-10` (first chunk 50 ms after the request, then 19 more 10 ms
  apart, on the server's own schedule) at `--agree-rate` for `--agree-requests`, each tool's
  own TTFT / TPOT / ITL / E2E / throughput beside the server's truth, warm-up and cool-down
  off in Hearth so that every tool counts every request.

GuideLLM and vLLM go in venvs of their own (`--guidellm`, `--vllm`; a client that is not
there is skipped and said so):
    python3 -m venv /tmp/guidellm && /tmp/guidellm/bin/pip install guidellm==0.8.1
    python3 -m venv /tmp/vllm && /tmp/vllm/bin/pip install vllm==0.33.0   (~9.5 GB)
Servers listen on 127.0.0.1, on a free port the OS picks or `--port-base N`. Run (about 8
minutes; `--json FILE` keeps every figure, `--keep DIR` the clients' own outputs):
    .venv/bin/python bench/lab_client.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lab_clients import (
    CHUNKS,
    GUIDELLM,
    HERE,
    IN_FLIGHT,
    TIMED,
    TRUTH_GAP,
    TRUTH_TTFT,
    VLLM,
    ClientRun,
    Setup,
    default_tokenizer,
    guidellm,
    hearth,
    pct,
    vllm,
)
from _procs import Ports, add_port_base, spawn, wait_ready

# --- figures ---------------------------------------------------------------------------------


def ms(seconds: float | None, digits: int = 2) -> str:
    return "-" if seconds is None or seconds != seconds else f"{seconds * 1000:.{digits}f}"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def max_rate_table(runs: list[ClientRun]) -> str:
    guide = next((r.rate() for r in runs if r.client == "guidellm"), None)
    rows = []
    for r in runs:
        own = (
            r.own.get("request_throughput")
            if r.client.startswith(("hearth", "vllm"))
            else r.own["metrics"]["requests_per_second"]["successful"]["mean"]
        )
        per = r.cpu_window / max(len(r.ok) - 1, 1) if r.cpu_window is not None else None
        core = r.upstream_cpu / (r.window[1] - r.window[0]) if r.upstream_cpu and r.window else None
        rows.append(
            [
                f"**{r.client}**" if r.client == "hearth" else r.client,
                f"{len(r.ok)}/{len(r.requests)}",
                f"{r.rate():,.0f}",
                f"{own:,.0f}",
                f"{r.rate() / guide:.1f}x" if guide else "-",
                ms(per, 3),
                ms(r.cpu_total / max(len(r.ok), 1), 3),
                "-" if core is None else f"{core:.0%}",
                "; ".join(r.notes),
            ]
        )
    head = [
        "client",
        "ok/sent",
        "completions/s",
        "its own figure",
        "vs guidellm",
        "CPU ms/request (window)",
        "CPU ms/request (whole command)",
        "upstream core busy",
        "note",
    ]
    return table(head, rows)


def rate_rows(rate: float, runs: list[ClientRun]) -> list[list[str]]:
    rows = []
    for r in runs:
        mid = [q for q in r.middle() if q.planned is not None]
        delays = [q.sent - q.planned for q in mid]  # type: ignore[operator]
        sends = sorted(q.sent for q in mid)
        achieved = (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 else float("nan")
        if r.client.startswith("hearth"):
            d = r.own["dispatch_delay"]["percentiles"]["p99"][0]
            own = f"p99 {ms(d)} ms, {'valid' if r.own['valid'] else 'INVALID'}"
        elif r.client.startswith("guidellm"):
            d = r.own["metrics"]["request_dispatch_delay"]["total"]["percentiles"]["p99"]
            own = f"p99 {ms(d)} ms, {len(r.own.get('warnings') or [])} warnings"
        else:
            own = "none recorded"
        rows.append(
            [
                f"{rate:g}/s",
                f"**{r.client}**" if r.client == "hearth" else r.client,
                f"{achieved:,.1f} ({achieved / rate:.1%})",
                ms(pct(delays, 50)),
                ms(pct(delays, 99)),
                ms(max(delays, default=None)),
                own,
                "-" if r.floor is None else f"{ms(r.floor[0])} / {ms(r.floor[1])}",
            ]
        )
    return rows


def agreement(runs: list[ClientRun], rate: float) -> str:
    """Each tool's own numbers against the server's truth and against Hearth's."""
    n = len(runs[0].requests)
    truth_e2e = TRUTH_TTFT + (CHUNKS - 1) * TRUTH_GAP
    truth = {
        "TTFT mean": TRUTH_TTFT,
        "TTFT p50": TRUTH_TTFT,
        "TTFT p99": TRUTH_TTFT,
        "TPOT, first token out (mean)": TRUTH_GAP,
        "TPOT, first token out (p50)": TRUTH_GAP,
        "TPOT, first token in (mean)": truth_e2e / CHUNKS,
        "ITL mean": TRUTH_GAP,
        "ITL p50": TRUTH_GAP,
        "ITL p99": TRUTH_GAP,
        "E2E mean": truth_e2e,
        "E2E p50": truth_e2e,
        "requests/s": n / ((n - 1) / rate + truth_e2e),
        "output tokens/s": CHUNKS * n / ((n - 1) / rate + truth_e2e),
    }
    seconds = {k for k in truth if not k.endswith("/s")}
    cols: dict[str, dict[str, float | None]] = {}
    for r in runs:
        cols[r.client] = own_figures(r)
    head = ["metric", "server's truth", *cols]
    rows = []
    for metric, value in truth.items():
        base = cols.get("hearth", {}).get(metric)
        row = [metric, ms(value) if metric in seconds else f"{value:.2f}"]
        for name, figures in cols.items():
            v = figures.get(metric)
            cell = "-" if v is None else (ms(v) if metric in seconds else f"{v:.2f}")
            if v is not None and base and name != "hearth":
                cell += f" ({v / base:.3f})"
            row.append(cell)
        rows.append(row)
    return table(head, rows)


def own_figures(r: ClientRun) -> dict[str, float | None]:
    """The numbers each tool itself reports, under the lab's names by definition (see the
    notes in RESULTS.md); seconds, or per second."""
    if r.client.startswith("hearth"):
        s = r.own
        p = lambda d, q: d["percentiles"][q][0]  # noqa: E731
        # Hearth reports no first-token-in TPOT: computed from its own records.
        incl = [(q.end - q.sent) / CHUNKS for q in r.ok]
        return {
            "TTFT mean": s["ttft"]["mean"],
            "TTFT p50": p(s["ttft"], "p50"),
            "TTFT p99": p(s["ttft"], "p99"),
            "TPOT, first token out (mean)": s["tpot"]["mean"],
            "TPOT, first token out (p50)": p(s["tpot"], "p50"),
            "TPOT, first token in (mean)": statistics.fmean(incl),
            "ITL mean": s["itl"]["mean"],
            "ITL p50": p(s["itl"], "p50"),
            "ITL p99": p(s["itl"], "p99"),
            "E2E mean": s["e2e"]["mean"],
            "E2E p50": p(s["e2e"], "p50"),
            "requests/s": s["request_throughput"],
            "output tokens/s": s["output_throughput"],
        }
    if r.client.startswith("guidellm"):
        m = r.own["metrics"]

        def g(key: str, q: str | None = None, scale: float = 0.001) -> float:
            d = m[key]["successful"]
            return (d["mean"] if q is None else d["percentiles"][q]) * scale

        return {
            "TTFT mean": g("time_to_first_token_ms"),
            "TTFT p50": g("time_to_first_token_ms", "p50"),
            "TTFT p99": g("time_to_first_token_ms", "p99"),
            # GuideLLM's ITL is (last - first token) / (tokens - 1): the lab's TPOT.
            "TPOT, first token out (mean)": g("inter_token_latency_ms"),
            "TPOT, first token out (p50)": g("inter_token_latency_ms", "p50"),
            "TPOT, first token in (mean)": g("time_per_output_token_ms"),
            "ITL mean": g("inter_token_latency_ms"),
            "ITL p50": None,
            "ITL p99": None,
            "E2E mean": g("request_latency", scale=1),
            "E2E p50": g("request_latency", "p50", 1),
            "requests/s": g("requests_per_second", scale=1),
            "output tokens/s": g("output_tokens_per_second", scale=1),
        }
    d = r.own
    return {
        "TTFT mean": d["mean_ttft_ms"] / 1000,
        "TTFT p50": d["median_ttft_ms"] / 1000,
        "TTFT p99": d["p99_ttft_ms"] / 1000,
        "TPOT, first token out (mean)": d["mean_tpot_ms"] / 1000,
        "TPOT, first token out (p50)": d["median_tpot_ms"] / 1000,
        "TPOT, first token in (mean)": None,
        "ITL mean": d["mean_itl_ms"] / 1000,
        "ITL p50": d["median_itl_ms"] / 1000,
        "ITL p99": d["p99_itl_ms"] / 1000,
        "E2E mean": d["mean_e2el_ms"] / 1000,
        "E2E p50": d["median_e2el_ms"] / 1000,
        "requests/s": d["request_throughput"],
        "output tokens/s": d["output_throughput"],
    }


# --- the run -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_port_base(parser)
    parser.add_argument(
        "--guidellm",
        type=Path,
        default=GUIDELLM,
        metavar="PATH",
        help=f"GuideLLM's command, in its own venv (default: {GUIDELLM})",
    )
    parser.add_argument(
        "--vllm",
        type=Path,
        default=VLLM,
        metavar="PATH",
        help=f"vLLM's command, in its own venv (default: {VLLM})",
    )
    parser.add_argument("--parts", default="max,rate,agree", help="of max, rate, agree")
    parser.add_argument(
        "--requests",
        type=int,
        default=20_000,
        help="max: requests for Hearth and vLLM (default 20000)",
    )
    parser.add_argument(
        "--guidellm-requests",
        type=int,
        default=5_000,
        help="max: requests for GuideLLM, ten times slower (default 5000)",
    )
    parser.add_argument("--rates", default="200,500,1000", help="rate: requests/s, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="rate: seconds per rate")
    parser.add_argument("--agree-rate", type=float, default=20.0)
    parser.add_argument("--agree-requests", type=int, default=400)
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=default_tokenizer(),
        help="a tokenizer.json folder every client uses (default: MiniLM's)",
    )
    parser.add_argument("--json", type=Path, help="write every figure here too")
    parser.add_argument("--keep", type=Path, help="keep the clients' own outputs in this folder")
    args = parser.parse_args()
    if args.tokenizer is None or not (args.tokenizer / "tokenizer.json").is_file():
        raise SystemExit("no tokenizer: pass --tokenizer DIR (with a tokenizer.json)")
    parts = set(args.parts.split(","))
    have_guidellm, have_vllm = args.guidellm.is_file(), args.vllm.is_file()
    for name, there, path in (
        ("GuideLLM", have_guidellm, args.guidellm),
        ("vLLM", have_vllm, args.vllm),
    ):
        if not there:
            print(f"{name} is not at {path}: its rows are left out (see --help)", flush=True)
    work = args.keep or Path(tempfile.mkdtemp(prefix="lab-client-"))
    work.mkdir(parents=True, exist_ok=True)
    ports = Ports(args.port_base)
    port = ports("upstream")
    server = spawn(
        "upstream",
        [sys.executable, str(HERE / "_lab_upstream.py"), "--port", str(port)],
        dict(os.environ),
        work / "upstream.log",
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "TOKENIZERS_PARALLELISM": "false",
    }
    results: dict = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", server.popen, time.monotonic())
        setup = Setup(
            f"http://127.0.0.1:{port}", work, args.tokenizer, server, args.guidellm, args.vllm, env
        )
        if "max" in parts:
            runs = max_rate(setup, args, have_guidellm, have_vllm)
            print(
                f"\n## Maximum rate ({args.requests} requests; GuideLLM "
                f"{args.guidellm_requests})\n\n{max_rate_table(runs)}\n",
                flush=True,
            )
            results["max"] = [summary_of(r) for r in runs]
        if "rate" in parts:
            rows, results["rate"] = [], []
            for rate in [float(x) for x in args.rates.split(",")]:
                count = int(rate * args.duration)
                runs = [
                    hearth(
                        setup,
                        f"hearth-{rate:g}",
                        {"kind": "constant", "rate": rate, "requests": count},
                        "mock",
                    )
                ]
                if have_guidellm:
                    runs.append(
                        guidellm(
                            setup,
                            f"guidellm-{rate:g}",
                            f"kind=constant,rate={rate:g}",
                            count,
                            "mock",
                        )
                    )
                if have_vllm:
                    runs.append(vllm(setup, f"vllm-{rate:g}", count, "mock", rate=rate))
                rows += rate_rows(rate, runs)
                results["rate"] += [summary_of(r) | {"rate": rate} for r in runs]
            head = [
                "rate",
                "client",
                "sent/s (of asked)",
                "dispatch p50 ms",
                "p99 ms",
                "max ms",
                "its own verdict",
                "machine's timer p50 / p99 ms",
            ]
            print(f"\n## Dispatch delay at constant rates\n\n{table(head, rows)}\n", flush=True)
        if "agree" in parts:
            runs = agree(setup, args, have_guidellm, have_vllm)
            print(
                f"\n## Agreement against {TIMED} at {args.agree_rate:g}/s, "
                f"{args.agree_requests} requests\n\n{agreement(runs, args.agree_rate)}\n"
            )
            results["agree"] = {r.client: own_figures(r) for r in runs}
    finally:
        server.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"the clients' own outputs: {work}")


def max_rate(
    setup: Setup, args: argparse.Namespace, have_guidellm: bool, have_vllm: bool
) -> list[ClientRun]:
    stage = {"kind": "throughput", "requests": args.requests}
    runs = [
        hearth(setup, "hearth", stage, "mock"),
        hearth(setup, "hearth-uvloop", stage, "mock", label="hearth (uvloop)", uvloop=True),
    ]
    profile = f"kind=throughput,max_concurrency={IN_FLIGHT}"
    if have_guidellm:
        runs.append(guidellm(setup, "guidellm", profile, args.guidellm_requests, "mock"))
        runs.append(
            guidellm(
                setup,
                "guidellm-1",
                profile,
                args.guidellm_requests,
                "mock",
                label="guidellm (1 worker)",
                workers=1,
            )
        )
    if have_vllm:
        runs.append(vllm(setup, "vllm", args.requests, "mock", rate=None))
    return runs


def agree(
    setup: Setup, args: argparse.Namespace, have_guidellm: bool, have_vllm: bool
) -> list[ClientRun]:
    rate, count = args.agree_rate, args.agree_requests
    runs = [
        hearth(
            setup,
            "hearth-agree",
            {"kind": "constant", "rate": rate, "requests": count},
            TIMED,
            counted_all=True,
        )
    ]
    if have_guidellm:
        runs.append(guidellm(setup, "guidellm-agree", f"kind=constant,rate={rate:g}", count, TIMED))
    if have_vllm:
        runs.append(vllm(setup, "vllm-agree", count, TIMED, rate=rate))
    return runs


def summary_of(r: ClientRun) -> dict:
    return {
        "client": r.client,
        "ok": len(r.ok),
        "sent": len(r.requests),
        "rate": r.rate(),
        "cpu_window": r.cpu_window,
        "cpu_total": r.cpu_total,
        "upstream_cpu": r.upstream_cpu,
        "window": r.window,
        "wall": r.wall,
        "notes": r.notes,
        "floor": r.floor,
        "dispatch_p50_p99": dispatch_percentiles(r),
    }


def dispatch_percentiles(r: ClientRun) -> list[float] | None:
    delays = [q.sent - q.planned for q in r.middle() if q.planned is not None]
    return [pct(delays, 50), pct(delays, 99)] if delays else None


if __name__ == "__main__":
    main()
