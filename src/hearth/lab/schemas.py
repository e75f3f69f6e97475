"""Request and response shapes of the lab's API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hearth.lab.economics import Economics
from hearth.lab.runner import RunSpec


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    spec: RunSpec
    deployment_id: uuid.UUID | None = Field(
        default=None, description="The catalog deployment measured (prices, hardware)."
    )


class StagePublic(BaseModel):
    index: int
    label: str
    spec: dict[str, Any]
    summary: dict[str, Any] | None = None  # lab.metrics.Summary, once finished
    valid: bool | None = None
    recorded: int | None = None  # requests saved so far (a run's own page)


class RunPublic(BaseModel):
    id: uuid.UUID
    name: str
    status: str
    source: str
    target: str
    model: str
    deployment_id: uuid.UUID | None
    error: str | None
    attempts: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    spec: dict[str, Any]
    stages: list[StagePublic]


class StageResult(BaseModel):
    index: int
    label: str
    requests: int  # in the stage's schedule
    valid: bool | None
    summary: dict[str, Any] | None
    economics: Economics | None = None  # valid stages of runs whose deployment is known


class RunResults(BaseModel):
    run: RunPublic
    deployment: str | None = None  # the catalog deployment its costs come from
    stages: list[StageResult]
