"""What the benchmarks measure of a process they run: CPU seconds and RSS of its whole
process tree (from /proc, through psutil), and stopping it."""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass

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
