"""What the benchmarks measure of a process they run: CPU seconds and RSS of its whole
process tree (from /proc, through psutil), and stopping it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
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


def spawn(name: str, args: list[str], env: dict[str, str], log: Path) -> Service:
    with log.open("ab") as out:
        popen = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Service(name, popen.pid, popen)


def wait_ready(url: str, proc: subprocess.Popen, started: float, timeout: float = 240) -> float:
    """Seconds from `started` until `url` answers 200."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.05)
    raise TimeoutError(url)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def start_fast_upstream(work: Path) -> tuple[Service, int]:
    """The tiny OpenAI-compatible upstream (`_fast_upstream.py`), ready, and its port."""
    port = free_port()
    service = spawn(
        "upstream",
        [sys.executable, str(Path(__file__).with_name("_fast_upstream.py")), "--port", str(port)],
        dict(os.environ),
        work / "upstream.log",
    )
    wait_ready(f"http://127.0.0.1:{port}/v1/models", service.popen, time.monotonic())
    return service, port
