"""The models this platform ships, measured by its own lab: SmolLM2-135M-Instruct on
llama.cpp's server, through `hearth up`'s gateway and through `hearth engine` (the local
engines as their own server), each a sweep (synchronous, throughput, then constant rates
between) with `hearth bench run`. The runs are stored in `hearth up`'s database, beside
the catalog it seeded (this machine as the deployment's hardware), so its /lab page shows
them with their charts; `--keep` keeps that data directory to look at afterwards.

Not a side-by-side comparison with a peer: what a peer would measure here is in
bench/lab_client.py (the load generator against GuideLLM's) and engine_concurrency.py
(the engine against llama.cpp's servers). Run:
    .venv/bin/python bench/lab_models.py [--requests 40] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _procs import Ports, add_port_base, spawn, wait_ready

MODEL = "smollm2-135m-instruct"
HEARTH = [sys.executable, "-m", "hearth"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_port_base(parser)
    parser.add_argument("--requests", type=int, default=40, help="requests per stage")
    parser.add_argument("--rates", type=int, default=2, help="constant rates in the sweep")
    parser.add_argument("--input-tokens", default="128:32:32:256")
    parser.add_argument("--output-tokens", default="64")
    parser.add_argument("--keep", type=Path, help="keep hearth up's data directory here")
    args = parser.parse_args()
    ports = Ports(args.port_base)
    work = Path(tempfile.mkdtemp(prefix="lab-models-"))
    data = args.keep or work / "hearth"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env |= {"HEARTH_DATA_DIR": str(data), "HEARTH_LOG_LEVEL": "warning"}
    services = []
    try:
        up_port, engine_port = ports("hearth"), ports("engine")
        started = time.monotonic()
        up = spawn(
            "hearth up",
            [*HEARTH, "up", "--port", str(up_port)],
            env,
            work / "up.log",
        )
        services.append(up)
        wait_ready(f"http://127.0.0.1:{up_port}/readyz", up.popen, started)  # type: ignore[arg-type]
        engine_env = env | {"HEARTH_DATA_DIR": str(work / "engine")}
        started = time.monotonic()
        engine = spawn(
            "hearth engine",
            [*HEARTH, "engine", "--port", str(engine_port)],
            engine_env,
            work / "engine.log",
        )
        services.append(engine)
        wait_ready(f"http://127.0.0.1:{engine_port}/readyz", engine.popen, started)  # type: ignore[arg-type]
        results = {}
        for label, port in (
            ("through hearth up's gateway", up_port),
            ("hearth engine, directly", engine_port),
        ):
            out = work / f"{port}.json"
            command = [
                *HEARTH, "bench", "run", "--url", f"http://127.0.0.1:{port}/v1",
                "--model", MODEL, "--stage", f"sweep:{args.rates}",
                "--requests", str(args.requests), "--input-tokens", args.input_tokens,
                "--output-tokens", args.output_tokens, "--slo-ttft", "0.5", "--slo-tpot", "0.05",
                "--name", f"SmolLM2 {label}", "--json", str(out),
            ]  # fmt: skip
            # Stored in hearth up's database whichever server is measured.
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            print(f"\n## {label}\n{done.stdout}", flush=True)
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            results[label] = json.loads(out.read_text())
        print(_table(results))
        print(f"\nruns stored in {data}; `HEARTH_DATA_DIR={data} hearth up` shows them at /lab")
    finally:
        for service in reversed(services):
            service.stop()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _ms(summary: dict, metric: str, p: str) -> str:
    value = (summary.get(metric) or {}).get("percentiles", {}).get(p)
    return f"{value[0] * 1000:.0f} [{value[1] * 1000:.0f}, {value[2] * 1000:.0f}]" if value else "-"


def _table(results: dict[str, dict]) -> str:
    head = (
        "target", "stage", "valid", "req/s", "output tok/s", "TTFT p50 ms [95% CI]",
        "TTFT p99 ms", "TPOT p50 ms", "E2E from plan p99 ms", "goodput req/s",
    )  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for label, run in results.items():
        for stage in run["stages"]:
            s = stage["summary"] or {}
            valid = "yes" if stage["valid"] else "no: " + "; ".join(s.get("invalid_because", []))
            cells = [
                label, stage["label"], valid, f"{s.get('request_throughput', 0):.2f}",
                f"{s.get('output_throughput', 0):.1f}", _ms(s, "ttft", "p50"),
                _ms(s, "ttft", "p99"), _ms(s, "tpot", "p50"), _ms(s, "e2e_planned", "p99"),
                f"{s.get('goodput') or 0:.2f}",
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
