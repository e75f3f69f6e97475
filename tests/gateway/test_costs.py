"""Prices per model: the cost of each request in its usage row and charged to the key's
budget; and what the gateway exposes about itself: Prometheus metrics per model and
deployment, and the `x-hearth-overhead-ms` header."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import openai
import pytest
from sqlalchemy import text

from hearth.config import ModelConfig, OpenAIEngineConfig, Settings
from hearth.server import create_app
from tests._accounts import api_key, create_user
from tests._server import Running, running
from tests.fakes.openai_upstream import FakeOpenAIUpstream

HELLO = [{"role": "user", "content": "hi"}]
# The fake answers 7 prompt and 5 completion tokens (streamed: 5 and `chunk_count`).
INPUT_PRICE, OUTPUT_PRICE = 1000.0, 2000.0  # per million tokens
COST = (7 * INPUT_PRICE + 5 * OUTPUT_PRICE) / 1e6  # 0.017


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream(chunk_count=3) as fake:
        yield fake


@pytest.fixture(scope="module")
def hearth(upstream: FakeOpenAIUpstream, postgres, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path_factory.mktemp("costs"),
        require_api_key=True,
        health_check_interval=0,
        engines=[
            OpenAIEngineConfig(
                name="gpu",
                base_url=upstream.base_url,
                models=[
                    ModelConfig(
                        name="priced",
                        upstream="ok",
                        input_price=INPUT_PRICE,
                        output_price=OUTPUT_PRICE,
                    ),
                    ModelConfig(name="free", upstream="ok"),
                ],
            )
        ],
    )
    with running(create_app(settings)) as server:
        yield server


def new_key(hearth: Running, **options: object) -> str:
    return api_key(hearth, create_user(hearth), **options)


def sdk(hearth: Running, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{hearth.url}/v1", api_key=key, max_retries=0)


def costs_since(hearth: Running, since: datetime, count: int) -> list:
    async def fetch() -> list:
        async with hearth.app.state.database.session() as session:
            result = await session.execute(
                text(
                    "SELECT model, deployment, status, prompt_tokens, completion_tokens, cost"
                    " FROM usage_record WHERE created_at >= :t ORDER BY id"
                ),
                {"t": since},
            )
            return list(result.all())

    deadline = time.monotonic() + 10
    while len(rows := hearth.call(fetch())) < count:
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    return rows


def test_usage_rows_carry_the_cost_at_the_models_prices(hearth: Running) -> None:
    since = datetime.now(UTC)
    client = sdk(hearth, new_key(hearth))
    client.chat.completions.create(model="priced", messages=HELLO)
    chunks = client.chat.completions.create(
        model="priced", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    assert next(c.usage for c in chunks if c.usage).completion_tokens == 3
    client.chat.completions.create(model="free", messages=HELLO)
    rows = costs_since(hearth, since, 3)
    assert [(r.model, r.deployment, r.status) for r in rows] == [
        ("priced", "gpu", 200),
        ("priced", "gpu", 200),
        ("free", "gpu", 200),
    ]
    assert rows[0].cost == pytest.approx(COST)
    assert rows[1].cost == pytest.approx((5 * INPUT_PRICE + 3 * OUTPUT_PRICE) / 1e6)
    assert rows[2].cost == 0


def test_a_budget_refuses_once_the_priced_requests_spent_it(hearth: Running) -> None:
    # 0.04 a day: the third request starts with 0.034 spent, the fourth with 0.051.
    client = sdk(hearth, new_key(hearth, budget=0.04, budget_period="day"))
    for _ in range(3):
        client.chat.completions.create(model="priced", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="priced", messages=HELLO)
    assert info.value.body["code"] == "insufficient_quota"


def test_overhead_header_on_every_completion(hearth: Running) -> None:
    client = sdk(hearth, new_key(hearth))
    raw = client.chat.completions.with_raw_response.create(model="free", messages=HELLO)
    assert raw.parse().choices[0].message.content
    with client.chat.completions.with_streaming_response.create(
        model="free", messages=HELLO, stream=True
    ) as streamed:
        assert list(streamed.iter_lines())
    for headers in (raw.headers, streamed.headers):
        overhead = float(headers["x-hearth-overhead-ms"])
        assert 0 <= overhead < 250, overhead  # generous: CPUs are shared with other runs


def test_gateway_metrics_per_model_and_deployment(hearth: Running) -> None:
    client = sdk(hearth, new_key(hearth))
    client.chat.completions.create(model="free", messages=HELLO)
    list(client.chat.completions.create(model="free", messages=HELLO, stream=True))
    with pytest.raises(openai.RateLimitError):
        limited = sdk(hearth, new_key(hearth, requests_per_minute=1))
        for _ in range(2):
            limited.chat.completions.create(model="free", messages=HELLO)
    metrics = httpx.get(f"{hearth.url}/metrics").text
    labels = '{deployment="gpu",model="free"}'
    for name in (
        "hearth_gateway_overhead_seconds_count",
        "hearth_gateway_added_seconds_count",
        "hearth_time_to_first_token_seconds_count",
        "hearth_time_per_output_token_seconds_count",
        "hearth_request_latency_seconds_count",
    ):
        assert f"{name}{labels}" in metrics, name
    assert 'hearth_gateway_requests_total{deployment="gpu",model="free",status="200"}' in metrics
    assert 'hearth_limit_rejections_total{limit="requests_per_minute",model="free"} 1.0' in metrics
    assert 'hearth_deployment_in_flight{deployment="gpu"} 0.0' in metrics
    assert 'hearth_deployment_healthy{deployment="gpu",model="free"} 1.0' in metrics
