"""BackgroundTask: started once, stopped by cancelling and waiting for the cancellation."""

from __future__ import annotations

import asyncio

import pytest

from hearth.http.background import BackgroundTask


def test_stop_cancels_and_waits_and_a_second_start_is_refused() -> None:
    cleaned_up: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # cancellation may await its own clean-up
            cleaned_up.append("done")

    async def main() -> None:
        task = BackgroundTask("test-loop")
        await task.stop()  # never started: nothing to do
        task.start(forever())
        await asyncio.sleep(0)
        assert task.running
        with pytest.raises(RuntimeError, match="already running"):
            task.start(forever())
        await task.stop()
        assert not task.running and cleaned_up == ["done"]
        await task.stop()  # twice: still nothing to do
        task.start(forever())  # and it may start again
        await asyncio.sleep(0)
        await task.stop()

    asyncio.run(main())
    assert cleaned_up == ["done", "done"]
