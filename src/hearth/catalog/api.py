"""Catalog routes (`/api/catalog/...`): models, hardware and deployments. Anyone signed in
(or with an API key) reads; admins write."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from hearth.accounts.auth import AdminDep, CallerDep
from hearth.catalog.schemas import (
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
from hearth.catalog.service import Catalog

router = APIRouter(prefix="/api/catalog", tags=["catalog"])


def _catalog(request: Request) -> Catalog:
    return request.app.state.catalog


CatalogDep = Annotated[Catalog, Depends(_catalog)]


# -- models -------------------------------------------------------------------------------


@router.get("/models")
async def list_models(catalog: CatalogDep, caller: CallerDep) -> list[ModelPublic]:
    """Every model in the catalog, by name."""
    return await catalog.list_models()


@router.post("/models", status_code=status.HTTP_201_CREATED)
async def create_model(body: ModelCreate, catalog: CatalogDep, admin: AdminDep) -> ModelPublic:
    """Add a model (409 if the name is taken)."""
    return await catalog.create_model(body)


@router.get("/models/{model_id}")
async def get_model(model_id: uuid.UUID, catalog: CatalogDep, caller: CallerDep) -> ModelPublic:
    """One model (404 if there is none)."""
    return await catalog.get_model(model_id)


@router.patch("/models/{model_id}")
async def update_model(
    model_id: uuid.UUID, body: ModelUpdate, catalog: CatalogDep, admin: AdminDep
) -> ModelPublic:
    """Change the fields given; null clears parameters, quantization or context_length."""
    return await catalog.update_model(model_id, body)


@router.delete("/models/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_model(model_id: uuid.UUID, catalog: CatalogDep, admin: AdminDep) -> Response:
    """Delete a model; 409 while a deployment uses it."""
    await catalog.delete_model(model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- hardware -----------------------------------------------------------------------------


@router.get("/hardware")
async def list_hardware(catalog: CatalogDep, caller: CallerDep) -> list[HardwarePublic]:
    """Every hardware profile with its prices (USD per hour), by name."""
    return await catalog.list_hardware()


@router.post("/hardware", status_code=status.HTTP_201_CREATED)
async def create_hardware(
    body: HardwareCreate, catalog: CatalogDep, admin: AdminDep
) -> HardwarePublic:
    """Add a hardware profile (409 if the name is taken)."""
    return await catalog.create_hardware(body)


@router.get("/hardware/{hardware_id}")
async def get_hardware(
    hardware_id: uuid.UUID, catalog: CatalogDep, caller: CallerDep
) -> HardwarePublic:
    """One hardware profile (404 if there is none)."""
    return await catalog.get_hardware(hardware_id)


@router.patch("/hardware/{hardware_id}")
async def update_hardware(
    hardware_id: uuid.UUID, body: HardwareUpdate, catalog: CatalogDep, admin: AdminDep
) -> HardwarePublic:
    """Change the fields given; its deployments' prices follow."""
    return await catalog.update_hardware(hardware_id, body)


@router.delete("/hardware/{hardware_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_hardware(hardware_id: uuid.UUID, catalog: CatalogDep, admin: AdminDep) -> Response:
    """Delete a hardware profile; 409 while a deployment runs on it."""
    await catalog.delete_hardware(hardware_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- deployments --------------------------------------------------------------------------


@router.get("/deployments")
async def list_deployments(catalog: CatalogDep, caller: CallerDep) -> list[DeploymentPublic]:
    """Every deployment with its model's and hardware's names and what it costs an hour."""
    return await catalog.list_deployments()


@router.post("/deployments", status_code=status.HTTP_201_CREATED)
async def create_deployment(
    body: DeploymentCreate, catalog: CatalogDep, admin: AdminDep
) -> DeploymentPublic:
    """Put a model on hardware with an engine (`model`, `hardware`: names or ids)."""
    return await catalog.create_deployment(body)


@router.get("/deployments/{deployment_id}")
async def get_deployment(
    deployment_id: uuid.UUID, catalog: CatalogDep, caller: CallerDep
) -> DeploymentPublic:
    """One deployment with its model's and hardware's names and prices (404 if none)."""
    return await catalog.get_deployment(deployment_id)


@router.patch("/deployments/{deployment_id}")
async def update_deployment(
    deployment_id: uuid.UUID, body: DeploymentUpdate, catalog: CatalogDep, admin: AdminDep
) -> DeploymentPublic:
    """Change the fields given; `hardware: null` takes it off its hardware."""
    return await catalog.update_deployment(deployment_id, body)


@router.delete("/deployments/{deployment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_deployment(
    deployment_id: uuid.UUID, catalog: CatalogDep, admin: AdminDep
) -> Response:
    """Delete a deployment."""
    await catalog.delete_deployment(deployment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
