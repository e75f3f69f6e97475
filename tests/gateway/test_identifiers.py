"""What applications say beyond what they ask of the model is honoured, not dropped:
`prompt_cache_key` keeps requests that share it on one deployment (where their prefix is
cached), and `user` / `safety_identifier` is kept on the usage row and shown to admins.
Two fake OpenAI-compatible deployments of one model, through the openai SDK."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import openai
import pytest
from sqlalchemy import text

from hearth.config import ModelConfig, OpenAIEngineConfig, Settings
from hearth.server import create_app
from tests._accounts import create_user, signed_in
from tests._server import Running, running
from tests.conftest import PostgresForTests
from tests.fakes.openai_upstream import FakeOpenAIUpstream


@pytest.fixture
def two(
    postgres: PostgresForTests, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Running, FakeOpenAIUpstream, FakeOpenAIUpstream]]:
    with FakeOpenAIUpstream(chunk_count=3) as a, FakeOpenAIUpstream(chunk_count=3) as b:
        engines = [
            OpenAIEngineConfig(
                name=name, base_url=fake.base_url, models=[ModelConfig(name="m", upstream="ok")]
            )
            for name, fake in (("a", a), ("b", b))
        ]
        settings = Settings(
            database_url=postgres.new_database(),
            data_dir=tmp_path_factory.mktemp("identifiers"),
            engines=engines,
            health_check_interval=0,
        )
        with running(create_app(settings)) as hearth:
            yield hearth, a, b


def _sdk(hearth: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{hearth.url}/v1", api_key="unused", max_retries=0)


def test_a_prompt_cache_key_keeps_its_requests_on_one_deployment(two) -> None:  # type: ignore[no-untyped-def]
    hearth, a, b = two
    client = _sdk(hearth)
    for key in range(12):
        for turn in range(4):
            messages = [{"role": "user", "content": f"k{key}"}]
            body = {"prompt_cache_key": f"prefix-{key}"}
            if turn % 2:
                chunks = client.chat.completions.create(
                    model="m", messages=messages, stream=True, extra_body=body
                )
                assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            else:
                client.chat.completions.create(model="m", messages=messages, extra_body=body)

    def keys(fake: FakeOpenAIUpstream) -> list[str]:
        return [
            r.json["messages"][0]["content"]
            for r in fake.requests
            if r.path == "/v1/chat/completions"
        ]

    on_a, on_b = keys(a), keys(b)
    assert not set(on_a) & set(on_b)  # no key was split between deployments
    assert on_a and on_b  # but keys were spread
    assert all(on_a.count(k) == 4 for k in on_a) and len(on_a) + len(on_b) == 48


def test_the_end_user_is_on_the_usage_row_and_the_admin_report(two) -> None:  # type: ignore[no-untyped-def]
    hearth, _, _ = two
    client = _sdk(hearth)
    hi = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="m", messages=hi, user="app-user-7")
    stream = client.chat.completions.create(model="m", messages=hi, user="app-user-7", stream=True)
    assert list(stream)
    # safety_identifier replaces user in OpenAI's API: it wins when both are sent.
    client.chat.completions.create(
        model="m", messages=hi, user="ignored", extra_body={"safety_identifier": "app-user-8"}
    )
    client.chat.completions.create(model="m", messages=hi)
    for bad, name in (({"user": "u" * 201}, "user"), ({"prompt_cache_key": 5}, "prompt_cache_key")):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="m", messages=hi, extra_body=bad)
        assert refused.value.body["param"] == name  # type: ignore[index]

    async def end_users() -> list[str | None]:
        async with hearth.app.state.database.session() as session:
            rows = await session.execute(
                text("SELECT end_user FROM usage_record WHERE status = 200 ORDER BY id")
            )
            return [r[0] for r in rows]

    deadline = time.monotonic() + 10  # usage rows are written every second
    while len(found := hearth.call(end_users())) < 4:
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    assert found == ["app-user-7", "app-user-7", "app-user-8", None]

    admin = signed_in(hearth, create_user(hearth, admin=True))
    page = admin.get("/admin/usage").text
    assert "By end user" in page
    assert re.search(r"<td>app-user-7</td><td>2</td>", page)
    assert re.search(r"<td>app-user-8</td><td>1</td>", page)
