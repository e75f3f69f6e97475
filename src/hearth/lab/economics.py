"""What a stage's throughput means in money and hardware: tokens/s per GPU and dollars per
million output tokens at on-demand and spot prices, from the catalog's deployment costs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Economics(BaseModel):
    deployment: str
    hardware: str | None
    accelerators: int | None  # in all: per replica times replicas
    tokens_per_second_per_accelerator: float | None
    usd_per_million_output_tokens: float | None  # at on-demand prices
    usd_per_million_output_tokens_spot: float | None


def economics(output_throughput: float, costs: Any) -> Economics:
    """`costs`: the catalog's DeploymentCosts (totals per hour over its replicas)."""
    count = None
    if costs.accelerator_count:
        count = costs.accelerator_count * costs.replicas
    per_hour = output_throughput * 3600

    def price(per_hour_usd: float | None) -> float | None:
        if per_hour_usd is None or per_hour <= 0:
            return None
        return per_hour_usd / per_hour * 1e6

    return Economics(
        deployment=costs.deployment,
        hardware=costs.hardware,
        accelerators=count,
        tokens_per_second_per_accelerator=output_throughput / count if count else None,
        usd_per_million_output_tokens=price(costs.on_demand_per_hour),
        usd_per_million_output_tokens_spot=price(costs.spot_per_hour),
    )
