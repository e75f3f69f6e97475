"""Health, readiness, metrics, request ids."""

from __future__ import annotations

import httpx

from hearth.config import DEFAULT_CHAT_MODEL


def test_healthz_and_readyz(base_url: str) -> None:
    assert httpx.get(f"{base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base_url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "engine:local": "ok", "engine:local-embeddings": "ok"},
    }


def test_request_id_is_echoed_or_made(base_url: str) -> None:
    given = httpx.get(f"{base_url}/healthz", headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = httpx.get(f"{base_url}/healthz", headers={"x-request-id": "bad id\twith space"})
    assert len(made.headers["x-request-id"]) == 32


def test_metrics_count_requests_and_tokens(base_url: str) -> None:
    httpx.post(
        f"{base_url}/v1/chat/completions",
        timeout=60,
        json={
            "model": DEFAULT_CHAT_MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 3,
        },
    )
    text = httpx.get(f"{base_url}/metrics").text
    assert (
        'hearth_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}'
        in text
    )
    assert f'hearth_tokens_total{{kind="completion",model="{DEFAULT_CHAT_MODEL}"}}' in text
    assert "hearth_http_request_duration_seconds_bucket" in text
    assert "hearth_time_to_first_token_seconds_bucket" in text
    assert "process_resident_memory_bytes" in text
