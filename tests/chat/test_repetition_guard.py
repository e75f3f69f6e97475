"""The chat's repetition guard: an answer that has become one short stretch repeated (a
small model looping) is stopped and stored as stopped, with the reason said; an answer that
merely repeats a word now and then is not."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hearth.chat.answers import repeating
from hearth.config import ModelConfig, OpenAIEngineConfig, Settings
from hearth.server import create_app
from tests._accounts import create_user, signed_in
from tests._server import Running, running
from tests.chat.test_chats import send
from tests.fakes.openai_upstream import FakeOpenAIUpstream


@pytest.fixture(scope="module")
def looping(postgres, tmp_path_factory) -> Iterator[tuple[Running, FakeOpenAIUpstream]]:  # type: ignore[no-untyped-def]
    with FakeOpenAIUpstream(chunk_count=3000) as fake:
        settings = Settings(
            database_url=postgres.new_database(),
            data_dir=tmp_path_factory.mktemp("loop"),
            engines=[
                OpenAIEngineConfig(
                    name="gpu", base_url=fake.base_url, models=[ModelConfig(name="loop")]
                )
            ],
        )
        with running(create_app(settings)) as server:
            yield server, fake


def test_a_looping_answer_is_stopped_and_says_why(looping) -> None:  # type: ignore[no-untyped-def]
    server, _ = looping
    client: httpx.Client = signed_in(server, create_user(server))
    chat = client.post("/api/chats", json={"model": "loop"}).json()
    got = send(client, chat["id"], "How do I reset the boiler?")
    kind, data = got[-1]
    assert kind == "error" and data["message"] == "Stopped: the model kept repeating itself."
    answer = data["answer"]
    assert answer["status"] == "stopped" and answer["content"].startswith("Here is how: A: ")
    # Stopped within a few hundred characters of the loop, not after 3,000 chunks.
    assert len(answer["content"]) < 1500
    stored = client.get(f"/api/chats/{chat['id']}/messages").json()["items"][-1]
    assert stored["status"] == "stopped" and stored["content"] == answer["content"]


@pytest.mark.parametrize(
    ("text", "loops"),
    [
        ("A: " * 300, True),
        ("The boiler restarts. " * 40, True),
        (" ".join(f"step {i}: check the valve" for i in range(60)), False),
        ("ha" * 100, False),  # too short to call
        ("x" * 599 + "y", False),
    ],
)
def test_what_counts_as_a_loop(text: str, loops: bool) -> None:
    assert repeating([text]) is loops
