"""A coroutine that runs in the background for as long as its owner does: the health
probes, the in-flight sync, the usage writer, the job worker. Started once; stopping
cancels it and waits until it has finished cancelling."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


class BackgroundTask:
    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[Any] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        if self.running:
            coroutine.close()  # never awaited: say so quietly, not with a warning
            raise RuntimeError(f"{self.name} is already running")
        self._task = asyncio.create_task(coroutine, name=self.name)

    async def stop(self) -> None:
        """Cancel it and wait (a no-op if it was never started or already stopped)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
