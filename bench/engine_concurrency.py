"""The CPU engine under concurrent streams, side by side in one run on this machine:
Hearth's engine through `hearth up`'s /v1 (with an API key), llama-cpp-python's server
(`python -m llama_cpp.server --interrupt_requests False`, one request at a time) and
llama.cpp's own `llama-server --parallel 8` run directly (the yardstick: Hearth supervises
the same binary, with the same flags: flash attention off, as Hearth runs it so that its
answers at temperature 0 are the in-process engine's; `llama-server+fa` is the same with
llama-server's default, flash attention on).

For each target and each concurrency level (1, 4, 8, 16 streams by default): that many
clients each send `--rounds` streaming chat completions one after another (SmolLM2,
temperature 0, `--max-tokens` output tokens, a different prompt each), and the level
reports the output tokens of all of them (from `usage`) over the level's wall time, and
the mean and p95 time to first token. The targets run one after another, each alone on
the machine. Then memory: llama-server's RSS with 8 slots of n_ctx 2048 each, after a
request on every slot, and with 9 (what one more slot costs).

Runs from the venv of `make dev` (which installs llama-server beside its Python). The
peer runs as `PYTHON -m llama_cpp.server` (`--llama-python`), whose environment needs
llama-cpp-python's server extras. Servers listen on 127.0.0.1, on free ports the OS
picks, or from `--port-base N` up: hearth, llama_cpp.server, llama-server.
Run:
    .venv/bin/python bench/engine_concurrency.py --llama-python /tmp/llamapy/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from _procs import Ports, add_port_base, pct, stream_chat, wait_ready

from hearth.engines._cpus import default_threads
from hearth.engines._llama_server_process import find_binary
from hearth.engines.llamacpp import bundled_model_path

MODEL = "smollm2-135m-instruct"
PROMPT = "Write a long story about a lighthouse keeper and storm number {n}."
N_CTX = 2048


def start(args: list[str], env: dict[str, str], ready: str, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_ready(ready, proc, time.monotonic(), timeout=240)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tree_rss_mb(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


def start_hearth(
    work: Path, port: int, threads: int, parallel: int
) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    engines = [
        {"kind": "llamacpp", "name": "local", "backend": "llama-server",
         "models": [{"name": MODEL, "n_threads": threads, "parallel": parallel}]},
        {"kind": "embedder", "name": "local-embeddings"},
    ]  # fmt: skip
    env |= {
        "HEARTH_DATA_DIR": str(work / "hearth"),
        "HEARTH_LOG_LEVEL": "warning",
        "HEARTH_REQUIRE_API_KEY": "true",
        "HEARTH_ENGINES": json.dumps(engines),
        # Streams beyond the slots wait in Hearth's queue rather than being refused.
        "HEARTH_ENGINE_MAX_WAITING": "64",
    }
    proc = start(
        [sys.executable, "-m", "hearth", "up", "--port", str(port)],
        env,
        f"http://127.0.0.1:{port}/readyz",
        work / "hearth.log",
    )
    out = subprocess.run(
        [sys.executable, "-m", "hearth", "keys", "create", "bench"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"hk-\S+", out)
    assert match, out
    return proc, match[0]


def start_llama_cpp_server(work: Path, port: int, python: str, threads: int) -> subprocess.Popen:
    args = [
        python, "-m", "llama_cpp.server", "--model", str(bundled_model_path()),
        "--model_alias", MODEL, "--n_ctx", str(N_CTX), "--n_threads", str(threads),
        "--host", "127.0.0.1", "--port", str(port), "--interrupt_requests", "False",
    ]  # fmt: skip
    try:
        return start(args, dict(os.environ), f"http://127.0.0.1:{port}/v1/models",
                     work / "llama_cpp_server.log")  # fmt: skip
    except RuntimeError as exc:
        raise SystemExit(
            f"{exc}: does {python} have llama-cpp-python[server]? (see --help)"
        ) from None


def start_llama_server(
    work: Path, port: int, binary: Path, threads: int, parallel: int, flash_attn: str = "off"
) -> subprocess.Popen:
    """As Hearth starts it (flash attention off: the in-process engine's answers), or with
    llama-server's own default (`flash_attn="auto"`)."""
    args = [
        str(binary), "--model", str(bundled_model_path()), "--alias", MODEL,
        "--host", "127.0.0.1", "--port", str(port), "--parallel", str(parallel),
        "--ctx-size", str(N_CTX * parallel), "--no-kv-unified", "--threads", str(threads),
        "--cont-batching", "--no-webui", "--metrics", "--flash-attn", flash_attn,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
    return start(args, env, f"http://127.0.0.1:{port}/health", work / "llama-server.log")


def stream_once(base: str, headers: dict[str, str], n: int, max_tokens: int) -> dict[str, float]:
    body = {
        "model": MODEL,
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0,
        "messages": [{"role": "user", "content": PROMPT.format(n=n)}],
        "stream_options": {"include_usage": True},
    }
    streamed = stream_chat(base, body, headers, timeout=900)
    first = streamed.first or streamed.end
    return {"ttft": first - streamed.sent, "tokens": streamed.tokens}


def level(base: str, headers: dict[str, str], streams: int, rounds: int, max_tokens: int,
          offset: int) -> dict[str, float]:  # fmt: skip
    results: list[dict[str, float]] = []
    errors: list[BaseException] = []

    def client(worker: int) -> None:
        for r in range(rounds):
            try:
                results.append(stream_once(base, headers, offset + worker * rounds + r, max_tokens))
            except Exception as exc:  # counted, and the level is reported as failed
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(streams)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ttfts = [r["ttft"] for r in results]
    tokens = sum(r["tokens"] for r in results)
    return {
        "streams": streams,
        "requests": len(results),
        "errors": len(errors),
        "output_tokens": tokens,
        "tok_s": round(tokens / wall, 1),
        "per_stream_tok_s": round(tokens / wall / streams, 1),
        "ttft_mean_s": round(statistics.fmean(ttfts), 3) if ttfts else None,
        "ttft_p95_s": round(pct(ttfts, 95), 3) if ttfts else None,
        "wall_s": round(wall, 1),
    }


def measure(name: str, base: str, headers: dict[str, str], args: argparse.Namespace) -> list[dict]:
    stream_once(base, headers, 10_000, 16)  # warm-up: the model's weights in cache
    rows = []
    for i, streams in enumerate(args.concurrency):
        row = {"target": name, **level(base, headers, streams, args.rounds, args.max_tokens,
                                         offset=1000 * (i + 1))}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def memory(work: Path, ports: Ports, binary: Path, threads: int) -> dict[str, float]:
    """llama-server's RSS with 8 and 9 slots of N_CTX each, after one request per slot."""
    found: dict[str, float] = {}
    for parallel in (8, 9):
        proc = start_llama_server(
            work, ports(f"llama-server-{parallel}"), binary, threads, parallel
        )
        base = f"http://127.0.0.1:{ports(f'llama-server-{parallel}')}"
        try:
            level(base, {}, parallel, 1, 16, offset=5000)
            found[f"rss_mb_{parallel}_slots"] = round(tree_rss_mb(proc.pid), 1)
        finally:
            stop(proc)
    found["rss_mb_one_more_slot"] = round(found["rss_mb_9_slots"] - found["rss_mb_8_slots"], 1)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", default="hearth,llama_cpp.server,llama-server",
                        help="comma-separated, run in this order; also llama-server+fa "
                        "(flash attention on, llama-server's default)")  # fmt: skip
    parser.add_argument("--concurrency", default="1,4,8,16",
                        type=lambda s: [int(x) for x in s.split(",")])  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="requests per client per level")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="generation threads of every target (default: Hearth's)")  # fmt: skip
    parser.add_argument("--parallel", type=int, default=8, help="slots of Hearth and llama-server")
    parser.add_argument("--llama-python", default=sys.executable,
                        help="the Python that runs llama_cpp.server (default: this)")  # fmt: skip
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    add_port_base(parser)
    args = parser.parse_args()
    binary = find_binary(None)
    if binary is None:
        raise SystemExit("no llama-server beside this Python or on PATH: `make dev` builds it")
    ports = Ports(args.port_base)
    chosen = args.targets.split(",")
    rows: list[dict] = []
    extra: dict[str, object] = {"threads": args.threads, "parallel": args.parallel,
                                "max_tokens": args.max_tokens, "rounds": args.rounds}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as tmp:
        work = Path(tmp)
        print(f"logs in {work} (removed at the end)", flush=True)
        if "hearth" in chosen:
            proc, key = start_hearth(work, ports("hearth"), args.threads, args.parallel)
            try:
                base = f"http://127.0.0.1:{ports('hearth')}"
                rows += measure("hearth", base, {"Authorization": f"Bearer {key}"}, args)
                extra["hearth_tree_rss_mb"] = round(tree_rss_mb(proc.pid), 1)
            finally:
                stop(proc)
        if "llama_cpp.server" in chosen:
            proc = start_llama_cpp_server(work, ports("llama_cpp.server"), args.llama_python,
                                          args.threads)  # fmt: skip
            try:
                rows += measure(
                    "llama_cpp.server", f"http://127.0.0.1:{ports('llama_cpp.server')}", {}, args
                )
            finally:
                stop(proc)
        for name, flash_attn in (("llama-server", "off"), ("llama-server+fa", "auto")):
            if name not in chosen:
                continue
            proc = start_llama_server(
                work, ports(name), binary, args.threads, args.parallel, flash_attn
            )
            try:
                rows += measure(name, f"http://127.0.0.1:{ports(name)}", {}, args)
            finally:
                stop(proc)
        if not args.no_memory:
            extra |= memory(work, ports, binary, args.threads)
    print(json.dumps(extra), flush=True)
    print_table(rows)
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, **extra}, indent=2))


def print_table(rows: list[dict]) -> None:
    print("\n| target | streams | tok/s (total) | tok/s per stream | TTFT mean s | TTFT p95 s "
          "| errors |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: (r["streams"], r["target"])):
        print(f"| {r['target']} | {r['streams']} | {r['tok_s']} | {r['per_stream_tok_s']} | "
              f"{r['ttft_mean_s']} | {r['ttft_p95_s']} | {r['errors']} |")  # fmt: skip


if __name__ == "__main__":
    main()
