"""Liveness, readiness and Prometheus metrics endpoints."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["operations"])

_CHECK_TIMEOUT = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(
    request: Request, only: Literal["database", "engines"] | None = None
) -> JSONResponse:
    """The database, Redis (when configured) and every engine answer; 503 with what failed
    otherwise. `only=database` checks the replica's own stores (PostgreSQL, Redis),
    `only=engines` the engines: a Kubernetes readiness probe asks `only=database`, so that an
    engine's outage does not take every web replica out of its Service (the gateway fails
    over and reports it; /readyz without `only` still says so)."""
    state = request.app.state
    checks: dict[str, str] = {}
    database = getattr(state, "database", None)  # `hearth engine` has none

    async def check(name: str, probe: object) -> None:
        try:
            result = await asyncio.wait_for(probe, _CHECK_TIMEOUT)  # type: ignore[arg-type]
            checks[name] = "ok" if result is not False else "unavailable"
        except Exception as exc:  # a probe's failure is the answer, not an error of ours
            checks[name] = f"unavailable: {type(exc).__name__}"

    probes = []
    if database is not None and only in (None, "database"):
        probes.append(check("database", database.ping()))
    gateway = getattr(state, "gateway", None)
    if gateway is not None and only in (None, "database"):
        # With Redis configured, a replica that cannot reach it cannot admit limited
        # requests: not ready either (the in-process limiter has nothing to ask).
        if gateway.limiter.shared:
            probes.append(check("redis", gateway.limiter.ping()))
    if only in (None, "engines"):
        probes += [check(f"engine:{e.name}", e.health()) for e in state.engines]
    await asyncio.gather(*probes)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
