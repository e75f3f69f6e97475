"""Runs in PostgreSQL: checkpoints written by COPY, a run stopped and resumed through the
database, runs queued through the API and run by the worker, costs from the catalog, pages."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from hearth.catalog.schemas import DeploymentCreate, HardwareCreate, ModelCreate
from hearth.catalog.service import Catalog
from hearth.db.session import Database
from hearth.lab.datasets import Data, Lengths, WordCounter
from hearth.lab.metrics import Options
from hearth.lab.profiles import Profile, Stage
from hearth.lab.runner import Runner, RunSpec
from hearth.lab.service import Runs
from tests._accounts import create_user, signed_in
from tests._server import Running
from tests.fakes.timed_engine import TimedEngine


@pytest.fixture(scope="module")
def engine() -> Iterator[TimedEngine]:
    with TimedEngine() as server:
        yield server


def _spec(engine: TimedEngine, *stages: Stage, **changes: object) -> RunSpec:
    fields: dict[str, object] = {
        "base_url": engine.base_url,
        "model": "timed",
        "profile": Profile(stages=list(stages)),
        "data": Data(input=Lengths(mean=20), output=Lengths(mean=8)),
        "options": Options(warmup=0, cooldown=0),
    }
    return RunSpec.model_validate(fields | changes)


def test_a_run_is_stored_stopped_and_resumed_in_postgresql(
    engine: TimedEngine, database_url: str
) -> None:
    engine.reset()
    engine.chunk_delay = 0.01

    async def scenario() -> None:
        database = Database(database_url, pool_size=2)
        try:
            runs = Runs(database)
            spec = _spec(
                engine,
                Stage(kind="synchronous", requests=10),
                Stage(kind="constant", rate=20, requests=10),
            )
            run = await runs.create(spec, name="two stages", created_by="test")
            assert run.status == "queued" and run.stages == []
            first = Runner(await runs.begin(run.id), runs.store(run.id), WordCounter(), grace=0)
            task = asyncio.ensure_future(first.run())
            while len(engine.bodies) < 4:  # noqa: ASYNC110 (the engine is another thread)
                await asyncio.sleep(0.005)
            first.stop()
            assert (await task).finished is False
            await runs.end(run.id, "interrupted")
            stopped = await runs.get(run.id)
            assert stopped.status == "interrupted" and stopped.attempts == 1
            assert [s.summary for s in stopped.stages] == [None, None]
            kept = stopped.stages[0].recorded or 0
            assert 3 <= kept < 10

            again = Runner(await runs.begin(run.id), runs.store(run.id), WordCounter())
            assert (await again.run()).finished
            await runs.end(run.id, "finished")
            done = await runs.get(run.id)
            assert done.status == "finished" and done.attempts == 2 and done.finished_at
            assert [s.recorded for s in done.stages] == [10, 10]
            assert all(s.valid and s.summary["succeeded"] == 10 for s in done.stages)
            records = await runs.records(run.id)
            assert [(st, r.index) for st, r in records] == [
                (s, i) for s in (0, 1) for i in range(10)
            ]
            assert {r.segment for st, r in records if st == 0} == {0, 1}
            assert all(r.chunks and r.server_output_tokens == 8 for _, r in records)
            cdf = await runs.ttft_cdf(run.id)
            assert set(cdf) == {0, 1} and [q for _, q in cdf[0]] == sorted(q for _, q in cdf[0])
            # A finished run is not run again; a run that does not exist is a 404.
            with pytest.raises(Exception, match="finished"):
                await runs.begin(run.id)
            with pytest.raises(Exception, match="no benchmark run"):
                await runs.get(uuid.uuid4())
        finally:
            await database.close()

    asyncio.run(scenario())


def test_costs_come_from_the_catalog(engine: TimedEngine, database_url: str) -> None:
    engine.reset()

    async def scenario() -> None:
        database = Database(database_url, pool_size=2)
        try:
            catalog, runs = Catalog(database), Runs(database)
            model = await catalog.create_model(ModelCreate(name="timed", family="fake"))
            gpu = await catalog.create_hardware(
                HardwareCreate(name="2xL4", accelerator="L4", accelerator_count=2,
                               on_demand_per_hour=1.6, spot_per_hour=0.8)
            )  # fmt: skip
            await catalog.create_deployment(
                DeploymentCreate(name="timed-on-l4", model=str(model.id), hardware=str(gpu.id),
                                 engine="vllm", replicas=2)
            )  # fmt: skip
            spec = _spec(engine, Stage(kind="concurrency", concurrency=2, requests=6))
            run = await runs.create(spec, name="costed", created_by="test")
            await Runner(await runs.begin(run.id), runs.store(run.id), WordCounter()).run()
            result = await runs.results(run.id, catalog)
            assert result.deployment == "timed-on-l4"
            [stage] = result.stages
            tps = stage.summary["output_throughput"]
            money = stage.economics
            # 4 L4s in all (2 per replica, 2 replicas) at $3.20/h on demand, $1.60 spot.
            assert money.accelerators == 4
            assert money.tokens_per_second_per_accelerator == pytest.approx(tps / 4)
            assert money.usd_per_million_output_tokens == pytest.approx(3.2 / (tps * 3600) * 1e6)
            assert money.usd_per_million_output_tokens_spot == pytest.approx(
                1.6 / (tps * 3600) * 1e6
            )
        finally:
            await database.close()

    asyncio.run(scenario())


def _wait_for(client: httpx.Client, run_id: str, status: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = client.get(f"/api/lab/runs/{run_id}").json()
        if run["run"]["status"] == status:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} is {run['run']['status']}, not {status}")


VLLM_RESULT = {
    "date": "20261201-101500", "backend": "vllm", "model_id": "meta-llama/Llama-3.1-8B",
    "tokenizer_id": "meta-llama/Llama-3.1-8B", "num_prompts": 200, "request_rate": 4.0,
    "burstiness": 1.0, "max_concurrency": None, "duration": 52.1, "completed": 198,
    "total_input_tokens": 204800, "total_output_tokens": 25344, "request_throughput": 3.80,
    "request_goodput": None, "output_throughput": 486.4, "total_token_throughput": 4417.2,
    "mean_ttft_ms": 61.2, "median_ttft_ms": 55.0, "std_ttft_ms": 20.1, "p99_ttft_ms": 140.3,
    "mean_tpot_ms": 14.1, "median_tpot_ms": 13.9, "std_tpot_ms": 1.2, "p99_tpot_ms": 18.0,
    "mean_itl_ms": 14.0, "median_itl_ms": 13.2, "std_itl_ms": 3.0, "p99_itl_ms": 31.5,
    "mean_e2el_ms": 1850.0, "median_e2el_ms": 1790.0, "std_e2el_ms": 300.0, "p99_e2el_ms": 2600.0,
}  # fmt: skip


def test_the_api_queues_runs_the_worker_runs_and_everyone_reads(
    hearth: Running, engine: TimedEngine
) -> None:
    engine.reset()
    admin = signed_in(hearth, create_user(hearth, admin=True))
    user = signed_in(hearth, create_user(hearth))
    spec = _spec(engine, Stage(kind="concurrency", concurrency=2, requests=6))
    body = {"name": "queued", "spec": spec.model_dump(mode="json")}
    assert user.post("/api/lab/runs", json=body).status_code == 403
    assert httpx.post(f"{hearth.url}/api/lab/runs", json=body).status_code == 401
    bad = admin.post("/api/lab/runs", json={**body, "spec": {**body["spec"], "surprise": 1}})
    assert bad.status_code in (400, 422)
    created = admin.post("/api/lab/runs", json=body)
    assert created.status_code == 202, created.text
    run_id = created.json()["id"]
    done = _wait_for(user, run_id, "finished")
    [stage] = done["stages"]
    assert stage["valid"] and stage["summary"]["succeeded"] == 6
    assert len(engine.bodies) == 6
    csv = user.get(f"/api/lab/runs/{run_id}/requests", params={"format": "csv"})
    assert csv.status_code == 200 and csv.text.count("\n") == 7  # a header and six rows
    # Pages: the list, the run with its charts, a comparison, the definitions.
    assert "queued" in user.get("/lab").text
    page = user.get(f"/lab/runs/{run_id}").text
    assert "concurrency 2" in page and "<svg" in page and "Invalid" not in page
    assert user.get("/lab/compare", params={"ids": [run_id, run_id]}).status_code == 200
    assert "coordinated-omission" in user.get("/lab/metrics").text.lower()
    # Another tool's result file joins the same tables, as an imported run.
    files = {"file": ("llama8b.json", __import__("json").dumps(VLLM_RESULT), "application/json")}
    assert user.post("/api/lab/import", files=files).status_code == 403
    imported = admin.post("/api/lab/import", files=files)
    assert imported.status_code == 201, imported.text
    [run] = imported.json()
    assert run["source"] == "vllm" and run["status"] == "finished" and run["name"] == "llama8b"
    summary = run["stages"][0]["summary"]
    assert summary["ttft"]["percentiles"]["p99"] == [pytest.approx(0.1403)]
    assert summary["output_throughput"] == 486.4 and run["stages"][0]["label"] == "poisson 4/s"
    # A result file larger than API bodies may be (64 KiB in these tests) is taken.
    big = __import__("json").dumps(VLLM_RESULT | {"padding": "x" * 300_000})
    large = admin.post("/api/lab/import", files={"file": ("big.json", big, "application/json")})
    assert large.status_code == 201, large.text
    junk = admin.post("/api/lab/import", files={"file": ("x.json", "{}", "application/json")})
    assert junk.status_code == 400 and "not a result file" in junk.text
    assert admin.delete(f"/api/lab/runs/{run_id}").status_code == 204
    assert user.get(f"/api/lab/runs/{run_id}").status_code == 404
