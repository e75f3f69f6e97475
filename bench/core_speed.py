"""Hearth core, side by side with llama.cpp's own Python server, in one run on this machine.

Measures:
- `hearth up` time to ready on an empty data directory (first run) and on the same
  directory again (second run), and the idle RSS of the Hearth process (the embedded
  PostgreSQL's processes are reported separately);
- single-stream generation through /v1/chat/completions (streaming, temperature 0, a fixed
  token budget): time to first token and tokens/s, for Hearth and for
  `python -m llama_cpp.server` serving the same GGUF with the same context size.

Runs from the venv of `make dev`, or of `pip install -e .` alone (standard library and
Hearth's own dependencies). The peer runs as `PYTHON -m llama_cpp.server`, by default
with this Python (`--llama-python`), whose environment then needs the server's extras:
    pip install 'llama-cpp-python[server]==0.3.36'
(the version Hearth already built, so that pip does not compile it again). Servers listen
on 127.0.0.1, on free ports the OS picks, or from `--port-base N` up: Hearth, then
llama_cpp.server.
Run:
    python bench/core_speed.py --runs 5 --max-tokens 128
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _procs import Ports, add_port_base, stream_chat, wait_ready

from hearth.engines.llamacpp import bundled_model_path

PROMPT = "Write a short story about a lighthouse keeper and a storm."


def start_hearth(data_dir: Path, port: int) -> tuple[subprocess.Popen, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env |= {"HEARTH_DATA_DIR": str(data_dir), "HEARTH_LOG_LEVEL": "warning"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hearth", "up", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(f"http://127.0.0.1:{port}/readyz", proc, started, timeout=180)
    return proc, time.monotonic() - started


def start_llama_server(port: int, n_ctx: int, python: str) -> tuple[subprocess.Popen, float]:
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            python,
            "-m",
            "llama_cpp.server",
            "--model",
            str(bundled_model_path()),
            "--model_alias",
            "smollm2",
            "--n_ctx",
            str(n_ctx),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--interrupt_requests",
            "False",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/v1/models", proc, started, timeout=180)
    except RuntimeError as exc:  # its output went to /dev/null: say what to check
        raise SystemExit(
            f"{exc}: does {python}'s environment have llama-cpp-python[server]? (see --help)"
        ) from None
    return proc, time.monotonic() - started


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def postgres_rss_mb(data_dir: Path) -> float:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    main = psutil.Process(int(pid_file.read_text().split()[0]))
    return sum(p.memory_info().rss for p in [main, *main.children()]) / 2**20


def stream_once(base: str, model: str, max_tokens: int) -> dict[str, float]:
    body = {
        "model": model,
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream_options": {"include_usage": True},
    }
    streamed = stream_chat(base, body)
    sent, first, end, tokens = streamed.sent, streamed.first, streamed.end, streamed.tokens
    assert first is not None, "no content streamed"
    return {
        "ttft_ms": (first - sent) * 1000,
        "tokens": tokens,
        "tokens_per_s": tokens / (end - sent),
        "decode_tokens_per_s": (tokens - 1) / (end - first) if end > first else 0.0,
    }


def measure(base: str, model: str, runs: int, max_tokens: int) -> dict[str, float]:
    stream_once(base, model, 8)  # warm-up
    results = [stream_once(base, model, max_tokens) for _ in range(runs)]
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--llama-python",
        default=sys.executable,
        metavar="PYTHON",
        help="the Python that runs the peer, `-m llama_cpp.server` (default: this one, "
        f"{sys.executable})",
    )
    add_port_base(parser)
    args = parser.parse_args()
    ports = Ports(args.port_base)

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        port = ports("hearth")
        proc, first_ready = start_hearth(data_dir, port)
        stop(proc)
        proc, second_ready = start_hearth(data_dir, port)
        time.sleep(3)
        idle_rss, pg_rss = rss_mb(proc.pid), postgres_rss_mb(data_dir)
        hearth = measure(
            f"http://127.0.0.1:{port}", "smollm2-135m-instruct", args.runs, args.max_tokens
        )
        stop(proc)

    peer_port = ports("llama_cpp.server")
    peer, peer_ready = start_llama_server(peer_port, 2048, args.llama_python)
    time.sleep(3)
    peer_rss = rss_mb(peer.pid)
    llama = measure(f"http://127.0.0.1:{peer_port}", "smollm2", args.runs, args.max_tokens)
    stop(peer)

    print(
        f"hearth up ready: first run {first_ready:.2f} s, second run {second_ready:.2f} s "
        f"(llama_cpp.server ready: {peer_ready:.2f} s)"
    )
    print(
        f"idle RSS: hearth {idle_rss:.0f} MB (+ embedded PostgreSQL {pg_rss:.0f} MB); "
        f"llama_cpp.server {peer_rss:.0f} MB"
    )
    print(f"single stream, {args.max_tokens} tokens, median of {args.runs}:")
    print(f"{'':22}{'TTFT ms':>10}{'tokens/s':>10}{'decode tok/s':>14}")
    for name, r in (("hearth /v1", hearth), ("llama_cpp.server", llama)):
        print(
            f"{name:22}{r['ttft_ms']:>10.1f}{r['tokens_per_s']:>10.1f}"
            f"{r['decode_tokens_per_s']:>14.1f}"
        )
    print(
        f"ratio hearth/peer: tokens/s {hearth['tokens_per_s'] / llama['tokens_per_s']:.2f}, "
        f"TTFT {hearth['ttft_ms'] / llama['ttft_ms']:.2f}"
    )


if __name__ == "__main__":
    main()
