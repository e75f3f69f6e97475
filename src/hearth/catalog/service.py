"""The catalog: models, hardware profiles and deployments, read by everyone and written by
admins; seeded at start-up from what the gateway serves.

Reads go through a cache (`hearth.catalog.cache`) invalidated by every write, on every
replica. One generation covers the whole catalog, since a deployment's read carries its
model's and hardware's names and prices: a price change must reach the deployments too.

A row is named by its id or by its (unique) name wherever a `ref` is taken.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DataError, IntegrityError

from hearth.catalog.cache import CatalogCache, LocalCatalogCache
from hearth.catalog.models import CatalogDeployment, CatalogHardware, CatalogModel
from hearth.catalog.schemas import (
    DeploymentCosts,
    DeploymentCreate,
    DeploymentPublic,
    DeploymentUpdate,
    HardwareCreate,
    HardwarePublic,
    HardwareUpdate,
    ModelCreate,
    ModelPublic,
    ModelUpdate,
)
from hearth.catalog.seeding import seed
from hearth.db.session import Database
from hearth.errors import Conflict, InvalidRequest, NotFound

log = logging.getLogger(__name__)
R = TypeVar("R")
Table = type[CatalogModel] | type[CatalogHardware] | type[CatalogDeployment]
_WHAT = {
    CatalogModel: "model",
    CatalogHardware: "hardware profile",
    CatalogDeployment: "deployment",
}
_MODELS = TypeAdapter(list[ModelPublic])
_HARDWARE = TypeAdapter(list[HardwarePublic])
_DEPLOYMENTS = TypeAdapter(list[DeploymentPublic])


class Catalog:
    def __init__(self, database: Database, cache: CatalogCache | None = None) -> None:
        self.database = database
        self.cache = cache or LocalCatalogCache()

    # -- reads (cached) ---------------------------------------------------------------------

    async def list_models(self) -> list[ModelPublic]:
        """Every model in the catalog, by name."""
        return await self._cached("models", _MODELS, lambda: self._models())

    async def get_model(self, ref: uuid.UUID | str) -> ModelPublic:
        """One model by id or name; NotFound if there is none."""
        return (await self._cached(f"model:{ref}", _MODELS, lambda: self._models(ref)))[0]

    async def list_hardware(self) -> list[HardwarePublic]:
        """Every hardware profile, by name."""
        return await self._cached("hardware", _HARDWARE, lambda: self._hardware())

    async def get_hardware(self, ref: uuid.UUID | str) -> HardwarePublic:
        """One hardware profile by id or name; NotFound if there is none."""
        return (await self._cached(f"hardware:{ref}", _HARDWARE, lambda: self._hardware(ref)))[0]

    async def list_deployments(self) -> list[DeploymentPublic]:
        """Every deployment with its model's and hardware's names and its prices, by name."""
        return await self._cached("deployments", _DEPLOYMENTS, lambda: self._deployments())

    async def get_deployment(self, ref: uuid.UUID | str) -> DeploymentPublic:
        """One deployment by id or name; NotFound if there is none."""
        key = f"deployment:{ref}"
        return (await self._cached(key, _DEPLOYMENTS, lambda: self._deployments(ref)))[0]

    async def find_deployment(self, name_or_model: str) -> DeploymentPublic | None:
        """The deployment named `name_or_model`, else the first (by name) of the model so
        named (e.g. the model a benchmark calls through the gateway); None if neither."""
        deployments = await self.list_deployments()
        for deployment in deployments:
            if deployment.name == name_or_model:
                return deployment
        return next((d for d in deployments if d.model_name == name_or_model), None)

    async def deployment_costs(self, deployment_id: uuid.UUID | str) -> DeploymentCosts:
        """What a deployment runs on and costs an hour in total (hardware price times replicas)."""
        d = await self.get_deployment(deployment_id)
        return DeploymentCosts(
            deployment=d.name,
            model=d.model_name,
            hardware=d.hardware_name,
            accelerator=d.accelerator,
            accelerator_count=d.accelerator_count,
            replicas=d.replicas,
            on_demand_per_hour=d.on_demand_per_hour,
            spot_per_hour=d.spot_per_hour,
        )

    # -- writes (admins) --------------------------------------------------------------------

    async def create_model(self, body: ModelCreate) -> ModelPublic:
        """Add a model; Conflict if the name is taken."""
        row = await self._insert(CatalogModel, body.model_dump())
        return ModelPublic.model_validate(row)

    async def update_model(self, ref: uuid.UUID | str, body: ModelUpdate) -> ModelPublic:
        """Change the fields given; NotFound, or Conflict for a name taken."""
        row = await self._update(CatalogModel, ref, body.model_dump(exclude_unset=True))
        return ModelPublic.model_validate(row)

    async def delete_model(self, ref: uuid.UUID | str) -> None:
        """Delete a model; Conflict while a deployment uses it."""
        await self._delete(CatalogModel, ref, CatalogDeployment.model_id)

    async def create_hardware(self, body: HardwareCreate) -> HardwarePublic:
        """Add a hardware profile; Conflict if the name is taken."""
        row = await self._insert(CatalogHardware, body.model_dump())
        return HardwarePublic.model_validate(row)

    async def update_hardware(self, ref: uuid.UUID | str, body: HardwareUpdate) -> HardwarePublic:
        """Change the fields given (prices reach its deployments' reads at once)."""
        row = await self._update(CatalogHardware, ref, body.model_dump(exclude_unset=True))
        return HardwarePublic.model_validate(row)

    async def delete_hardware(self, ref: uuid.UUID | str) -> None:
        """Delete a hardware profile; Conflict while a deployment runs on it."""
        await self._delete(CatalogHardware, ref, CatalogDeployment.hardware_id)

    async def create_deployment(self, body: DeploymentCreate) -> DeploymentPublic:
        """Put a model (by name or id) on hardware (likewise, optional) with an engine."""
        values = body.model_dump(exclude={"model", "hardware"})
        values |= await self._references(body.model, body.hardware, hardware_given=True)
        row = await self._insert(CatalogDeployment, values | {"source": "manual"})
        return (await self._deployments(row.id))[0]

    async def update_deployment(
        self, ref: uuid.UUID | str, body: DeploymentUpdate
    ) -> DeploymentPublic:
        """Change the fields given; `model` and `hardware` by name or id (hardware null:
        none)."""
        values = body.model_dump(exclude_unset=True, exclude={"model", "hardware"})
        values |= await self._references(
            body.model, body.hardware, hardware_given="hardware" in body.model_fields_set
        )
        row = await self._update(CatalogDeployment, ref, values)
        return (await self._deployments(row.id))[0]

    async def delete_deployment(self, ref: uuid.UUID | str) -> None:
        """Delete a deployment (a seeded one comes back at the next start while the gateway
        still serves it)."""
        await self._delete(CatalogDeployment, ref, None)

    # -- seeding ----------------------------------------------------------------------------

    async def seed_from_gateway(
        self, routes: Any, *, local_hardware: HardwareCreate | None = None
    ) -> int:
        """Add what the gateway (`routes`: its ModelRoutes) serves and the catalog lacks: a
        model row per served model and a deployment row per deployment of it, linked to
        `local_hardware` (this machine) for local engines; that profile itself only if the
        catalog has no hardware yet. Rows that exist by name are left as they are (an
        admin's edits stand). Replicas starting together take turns (an advisory lock),
        and every insert is ON CONFLICT DO NOTHING besides. Returns the rows added."""
        async with self.database.session() as session:
            added = await seed(session, routes, local_hardware)
            await session.commit()
        if added:
            await self.cache.invalidate()
            log.info("catalog: %d rows added from what the gateway serves", added)
        return added

    # -- helpers ----------------------------------------------------------------------------

    async def _cached(
        self, key: str, adapter: TypeAdapter[list[R]], load: Callable[[], Awaitable[list[R]]]
    ) -> list[R]:
        lookup = await self.cache.lookup(key)
        if lookup.value is not None:
            try:
                return adapter.validate_json(lookup.value)
            except ValidationError:  # written by another version of Hearth: read afresh
                pass
        value = await load()
        await self.cache.store(key, lookup.generation, adapter.dump_json(value))
        return value

    async def _models(self, ref: uuid.UUID | str | None = None) -> list[ModelPublic]:
        statement = select(CatalogModel).order_by(CatalogModel.name)
        rows = await self._rows(CatalogModel, statement, ref)
        return [ModelPublic.model_validate(r) for r in rows]

    async def _hardware(self, ref: uuid.UUID | str | None = None) -> list[HardwarePublic]:
        statement = select(CatalogHardware).order_by(CatalogHardware.name)
        rows = await self._rows(CatalogHardware, statement, ref)
        return [HardwarePublic.model_validate(r) for r in rows]

    async def _deployments(self, ref: uuid.UUID | str | None = None) -> list[DeploymentPublic]:
        statement = (
            select(CatalogDeployment, CatalogModel.name, CatalogHardware)
            .join(CatalogModel, CatalogModel.id == CatalogDeployment.model_id)
            .outerjoin(CatalogHardware, CatalogHardware.id == CatalogDeployment.hardware_id)
            .order_by(CatalogDeployment.name)
        )
        if ref is not None:
            statement = statement.where(_is(CatalogDeployment, ref))
        async with self.database.read() as session:
            rows = (await session.execute(statement)).all()
        if ref is not None and not rows:
            raise NotFound(f"There is no deployment {ref!r} in the catalog.")
        return [_deployment(d, model_name, hardware) for d, model_name, hardware in rows]

    async def _rows(self, table: Table, statement: Any, ref: uuid.UUID | str | None) -> list[Any]:
        if ref is not None:
            statement = statement.where(_is(table, ref))
        async with self.database.read() as session:
            rows = list(await session.scalars(statement))
        if ref is not None and not rows:
            raise NotFound(f"There is no {_WHAT[table]} {ref!r} in the catalog.")
        return rows

    async def _references(
        self, model: str | None, hardware: str | None, *, hardware_given: bool
    ) -> dict[str, Any]:
        """The ids of a deployment's model and hardware, given by name or id."""
        found: dict[str, Any] = {}
        async with self.database.read() as session:
            if model is not None:
                found["model_id"] = await session.scalar(
                    select(CatalogModel.id).where(_is(CatalogModel, model))
                )
                if found["model_id"] is None:
                    raise InvalidRequest(
                        f"There is no model {model!r} in the catalog.", param="model"
                    )
            if hardware_given:
                found["hardware_id"] = None
                if hardware is not None:
                    found["hardware_id"] = await session.scalar(
                        select(CatalogHardware.id).where(_is(CatalogHardware, hardware))
                    )
                    if found["hardware_id"] is None:
                        raise InvalidRequest(
                            f"There is no hardware profile {hardware!r} in the catalog.",
                            param="hardware",
                        )
        return found

    async def _insert(self, table: Table, values: dict[str, Any]) -> Any:
        async with self.database.session() as session:
            try:
                row = await session.scalar(
                    insert(table).values(id=uuid.uuid4(), **values).returning(table)
                )
                await session.commit()
            except (IntegrityError, DataError) as exc:
                raise _conflict(table, values.get("name"), exc) from None
        await self.cache.invalidate()
        return row

    async def _update(self, table: Table, ref: uuid.UUID | str, values: dict[str, Any]) -> Any:
        async with self.database.session() as session:
            try:
                row = await session.scalar(
                    update(table)
                    .where(_is(table, ref))
                    .values(**values, updated_at=func.now())
                    .returning(table)
                )
                if row is None:
                    raise NotFound(f"There is no {_WHAT[table]} {ref!r} in the catalog.")
                await session.commit()
            except (IntegrityError, DataError) as exc:
                raise _conflict(table, values.get("name"), exc) from None
        await self.cache.invalidate()
        return row

    async def _delete(self, table: Table, ref: uuid.UUID | str, used_by: Any) -> None:
        what = _WHAT[table]
        async with self.database.session() as session:
            row = await session.scalar(select(table).where(_is(table, ref)).with_for_update())
            if row is None:
                raise NotFound(f"There is no {what} {ref!r} in the catalog.")
            if used_by is not None:
                users = list(
                    await session.scalars(
                        select(CatalogDeployment.name)
                        .where(used_by == row.id)
                        .order_by(CatalogDeployment.name)
                    )
                )
                if users:
                    raise Conflict(
                        f"The {what} {row.name!r} is used by the deployment"
                        f"{'s' if len(users) > 1 else ''} {', '.join(users)}: delete or change "
                        f"{'them' if len(users) > 1 else 'it'} first.",
                    )
            try:
                await session.execute(delete(table).where(table.id == row.id))
                await session.commit()
            except IntegrityError:  # a deployment was added meanwhile (RESTRICT)
                raise Conflict(f"The {what} {row.name!r} is used by a deployment.") from None
        await self.cache.invalidate()


def _is(table: Table, ref: uuid.UUID | str) -> ColumnElement[bool]:
    """The row named `ref`: an id, or a name (a name may look like an id, hence both)."""
    if isinstance(ref, uuid.UUID):
        return table.id == ref
    try:
        as_id = uuid.UUID(ref)
    except ValueError:
        return table.name == ref
    return or_(table.id == as_id, table.name == ref)


def _conflict(table: Table, name: str | None, exc: IntegrityError | DataError) -> Exception:
    if isinstance(exc, IntegrityError) and "uq_catalog_" in str(exc.orig):
        return Conflict(f"A {_WHAT[table]} named {name!r} exists.", param="name")
    # A check, a reference or a size the request shapes did not catch (or a model deleted
    # meanwhile): the client's to fix, not a server error.
    log.info("catalog: the database refused a %s: %s", _WHAT[table], exc.orig)
    return InvalidRequest(
        f"The database refused this {_WHAT[table]}: a value out of range, or a model or "
        "hardware profile deleted meanwhile."
    )


def _deployment(
    d: CatalogDeployment, model_name: str, hw: CatalogHardware | None
) -> DeploymentPublic:
    def total(price: Any) -> float | None:
        return None if price is None else float(price) * d.replicas

    return DeploymentPublic(
        id=d.id,
        name=d.name,
        model_id=d.model_id,
        model_name=model_name,
        hardware_id=d.hardware_id,
        hardware_name=hw.name if hw else None,
        accelerator=hw.accelerator if hw else None,
        accelerator_count=hw.accelerator_count if hw else None,
        engine=d.engine,
        endpoint=d.endpoint,
        replicas=d.replicas,
        source=d.source,  # type: ignore[arg-type]
        notes=d.notes,
        on_demand_per_hour=total(hw.on_demand_per_hour) if hw else None,
        spot_per_hour=total(hw.spot_per_hour) if hw else None,
        created_at=d.created_at,
        updated_at=d.updated_at,
    )
