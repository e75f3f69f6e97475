"""One `llama-server` child process (llama.cpp's own server), supervised like the embedded
PostgreSQL: started by Hearth, on a Unix socket in a private folder (no port to clash
with or to expose), ready once its /health answers, started again with backoff if it
dies, stopped with Hearth.

Its output is kept in memory (the last lines) and logged only when it fails to start or
dies: at its default verbosity llama-server logs no prompt or answer text, but its
diagnostics are of no use while it runs well.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from hearth.config import LlamaCppModelConfig
from hearth.engines._cpus import default_threads
from hearth.engines._wire import WireClient, WireError
from hearth.errors import ConfigError

log = logging.getLogger(__name__)

BINARY = "llama-server"
# Prompt cache in RAM (llama-server's default is 8 GiB): prompts of finished requests kept
# to be reused by the next request with the same prefix (a chat's next turn, a shared
# system prompt). SmolLM2's KV cache is ~47 MB per 2048-token slot.
CACHE_RAM_MIB = 256
_START_SECONDS = 120.0  # a large GGUF takes a while to load from a cold disk
_STOP_SECONDS = 5.0
_STABLE_SECONDS = 30.0  # up this long: the next death starts the backoff over
_BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_PR_SET_PDEATHSIG = 1


def find_binary(configured: Path | None) -> Path | None:
    """The llama-server to run: the configured one, else the one beside this Python (the
    venv's bin/, where `make` installs it; the image's /opt/hearth/bin), else on PATH."""
    if configured is not None:
        path = configured.expanduser()
        return path if path.is_file() and os.access(path, os.X_OK) else None
    beside = Path(sys.executable).parent / BINARY
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(BINARY)
    return Path(found) if found else None


@dataclass(frozen=True)
class ServerOptions:
    """How one model's child is started."""

    binary: Path
    model: LlamaCppModelConfig
    socket: Path

    def argv(self) -> list[str]:
        model = self.model
        assert model.path is not None
        argv = [
            str(self.binary),
            "--model", str(model.path),
            "--alias", model.upstream_name,
            "--host", str(self.socket),  # a host ending in .sock is a Unix socket
            "--parallel", str(model.parallel),
            # Each slot gets a whole n_ctx window of its own, as the in-process engine
            # gives each request: the total is split evenly, never shared.
            "--ctx-size", str(model.n_ctx * model.parallel),
            "--no-kv-unified",
            "--threads", str(model.n_threads or default_threads()),
            "--cont-batching",
            # As llama-cpp-python computes attention (its default): the same answer at
            # temperature 0 as the in-process engine. With flash attention ("auto" turns
            # it on for the CPU) the last bits differ, and greedy answers drift apart.
            "--flash-attn", "off",
            "--metrics",
            "--slots",
            "--no-webui",
            "--cache-ram", str(CACHE_RAM_MIB),
            # A comment line every 2 s while a prompt is evaluated: a client that left is
            # noticed (the write fails) and its slot freed without waiting for its first token.
            "--sse-ping-interval", "2",
            # The GGUF's own Jinja template, as llama-cpp-python renders it in-process (the
            # same prompt, token for token); it is also what renders tools and parses the
            # model's tool calls. Without it, llama.cpp's built-in approximation of the
            # template leaves out SmolLM2's default system prompt. This build's default,
            # said here so that another build's cannot change the prompts.
            "--jinja",
        ]  # fmt: skip
        if model.chat_format:
            argv += ["--chat-template", model.chat_format]
        return argv


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when Hearth dies, even by SIGKILL (Linux), so no
    llama-server is left holding memory and cores for nobody."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def child_environment() -> dict[str, str]:
    """Hearth's environment without llama-server's own `LLAMA_ARG_*` variables: only
    Hearth's settings decide how the child runs."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}


class LlamaServerProcess:
    """One model's llama-server: `start()` returns once it answers /health; while it runs,
    a task restarts it when it dies; `stop()` ends both."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.name = options.model.name
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=30)
        self._supervisor: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False
        self._ready = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        """Start the child and wait until it serves; ConfigError if it cannot."""
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"llama-server-{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._terminate()
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        with contextlib.suppress(FileNotFoundError):
            self.options.socket.unlink()

    async def _spawn(self) -> None:
        self._ready.clear()
        # The socket file a dead child left would make the new one fail to bind.
        with contextlib.suppress(FileNotFoundError):
            self.options.socket.unlink()
        self._output.clear()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.options.argv(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=child_environment(),
                start_new_session=True,  # a terminal's Ctrl-C reaches Hearth, which stops it
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise ConfigError(f"cannot run {self.options.binary}: {exc}") from exc
        proc = self._proc
        # Held here: the event loop keeps only a weak reference to a task.
        self._reader = asyncio.create_task(self._read_output(proc))
        try:
            await self._wait_healthy(proc)
        except BaseException:
            await self._terminate()
            raise
        log.info(
            "llama-server for %s running (pid %d, %d slots)",
            self.name,
            proc.pid,
            self.options.model.parallel,
        )
        self._ready.set()

    async def _wait_healthy(self, proc: asyncio.subprocess.Process) -> None:
        """Until /health answers 200 (503 while the model loads); ConfigError if the child
        exits first or takes longer than _START_SECONDS."""
        client = WireClient(
            connect_timeout=1.0, read_timeout=5.0, unix_socket=str(self.options.socket)
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_SECONDS
        try:
            while True:
                if proc.returncode is not None:
                    await asyncio.sleep(0.1)  # the last lines of its output
                    raise ConfigError(
                        f"llama-server for '{self.name}' exited with status {proc.returncode} "
                        f"while starting: {self.output_tail()}"
                    )
                if self.options.socket.exists():
                    try:
                        response = await client.request(
                            "GET", "http://llama-server/health", total=5.0
                        )
                        await response.read()
                        if response.status == 200:
                            return
                    except WireError:
                        pass
                if loop.time() > deadline:
                    raise ConfigError(
                        f"llama-server for '{self.name}' did not become ready within "
                        f"{_START_SECONDS:.0f} s: {self.output_tail()}"
                    )
                await asyncio.sleep(0.1)
        finally:
            await client.close()

    async def _supervise(self) -> None:
        """Restart the child whenever it dies, with backoff while it keeps dying."""
        failures = 0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            proc = self._proc
            assert proc is not None
            started = loop.time()
            status = await proc.wait()
            self._ready.clear()
            if self._stopping:
                return
            if loop.time() - started > _STABLE_SECONDS:
                failures = 0
            delay = _BACKOFF[min(failures, len(_BACKOFF) - 1)]
            failures += 1
            log.warning(
                "llama-server for %s exited with status %s; restarting in %.1f s: %s",
                self.name,
                status,
                delay,
                self.output_tail(),
            )
            await asyncio.sleep(delay)
            try:
                await self._spawn()
                self.restarts += 1
            except ConfigError as exc:
                log.error("llama-server for %s failed to restart: %s", self.name, exc)
                # _spawn left a dead process: the loop waits on it (at once) and backs off.

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), _STOP_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def _read_output(self, proc: asyncio.subprocess.Process) -> None:
        """Keep the last lines of the child's output (read always: a full pipe would
        stop it), each cut to 500 characters."""
        assert proc.stdout is not None
        pending = b""
        while data := await proc.stdout.read(65536):
            *lines, pending = (pending + data).split(b"\n")
            self._output.extend(line.decode(errors="replace").rstrip()[:500] for line in lines)
            pending = pending[-4096:]

    def output_tail(self, lines: int = 8) -> str:
        tail = list(self._output)[-lines:]
        return " | ".join(tail) if tail else "(no output)"
