"""Hearth's load generator as `lab_client.py` runs it: the lab's Runner, in this process, with
a MemoryStore (no database), on one stage given as a RunSpec in JSON. Writes what the
benchmark compares to `--out`: the stage's Summary, each request's times, and the wall-clock
moments of the first and last completion (to cut the client's CPU samples to the window
in which it was sending).

    python bench/_lab_hearth.py --spec SPEC.json --out RESULT.json [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from hearth.lab.datasets import load_tokenizer
from hearth.lab.runner import MemoryStore, Runner, RunSpec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, not asyncio's")
    args = parser.parse_args()
    spec = RunSpec.model_validate_json(args.spec.read_text())
    store = MemoryStore()
    done_at: dict[str, float] = {}

    def progress(stage: int, label: str, done: int, total: int) -> None:
        now = time.time()
        done_at.setdefault("first", now)
        done_at["last"] = now
        done_at["count"] = done

    runner = Runner(spec, store, load_tokenizer(spec.tokenizer), progress=progress)
    started, cpu = time.time(), time.process_time()
    if args.uvloop:
        import uvloop

        outcome = uvloop.run(runner.run())
    else:
        outcome = asyncio.run(runner.run())
    records = store.saved.get(0, [])
    result = {
        "finished": outcome.finished,
        "failure": outcome.failure,
        "summary": outcome.summaries[0][1].model_dump(mode="json") if outcome.summaries else None,
        "started": started,
        "ended": time.time(),
        "cpu": time.process_time() - cpu,
        "first_done": done_at.get("first"),
        "last_done": done_at.get("last"),
        "records": [
            [r.index, r.planned, r.sent, r.first, r.end, r.ok, r.output_tokens(), len(r.chunks)]
            for r in sorted(records, key=lambda r: r.index)
        ],
    }
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
