"""/v1/responses with the official openai SDK: text in and out, streamed or not, a
conversation continued with previous_response_id (stored in PostgreSQL, the owner's only),
and what cannot be honoured refused by name."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from hearth.config import DEFAULT_CHAT_MODEL
from tests._accounts import api_key, create_user
from tests._server import Running


def _client(hearth: Running) -> openai.OpenAI:
    key = api_key(hearth, create_user(hearth))
    return openai.OpenAI(base_url=f"{hearth.url}/v1", api_key=key, max_retries=0)


def test_a_response_streamed_or_not_and_a_conversation_continued(hearth: Running) -> None:
    client = _client(hearth)
    first = client.responses.create(
        model=DEFAULT_CHAT_MODEL,
        instructions="Answer in a few words.",
        input="My name is Ada. What is 2 + 2?",
        max_output_tokens=24,
        temperature=0,
    )
    assert first.object == "response" and first.status in ("completed", "incomplete")
    assert first.output_text and first.usage and 0 < first.usage.output_tokens <= 24
    assert client.responses.retrieve(first.id).output_text == first.output_text

    # Continued: the history comes from the stored chain, so the prompt grows by it.
    second = client.responses.create(
        model=DEFAULT_CHAT_MODEL,
        input="What is my name?",
        previous_response_id=first.id,
        max_output_tokens=16,
        temperature=0,
    )
    alone = client.responses.create(
        model=DEFAULT_CHAT_MODEL, input="What is my name?", max_output_tokens=16, temperature=0
    )
    assert second.previous_response_id == first.id
    assert second.usage and alone.usage
    assert second.usage.input_tokens > alone.usage.input_tokens + 10

    events = list(
        client.responses.create(
            model=DEFAULT_CHAT_MODEL, input="What is my name?", previous_response_id=first.id,
            max_output_tokens=16, temperature=0, stream=True,
        )
    )  # fmt: skip
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert streamed == second.output_text  # temperature 0: the same answer either way
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = events[-1].response
    assert (
        done.output_text == streamed and client.responses.retrieve(done.id).output_text == streamed
    )

    # store: false keeps nothing to continue from.
    unstored = client.responses.create(
        model=DEFAULT_CHAT_MODEL, input="Hi", store=False, max_output_tokens=4
    )
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_nobody_continues_or_reads_another_owners_response(hearth: Running) -> None:
    alice, mallory = _client(hearth), _client(hearth)
    mine = alice.responses.create(model=DEFAULT_CHAT_MODEL, input="Secret: 42", max_output_tokens=4)
    with pytest.raises(openai.NotFoundError):
        mallory.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError) as caught:
        mallory.responses.create(
            model=DEFAULT_CHAT_MODEL, input="What was the secret?", previous_response_id=mine.id
        )
    assert caught.value.body["param"] == "previous_response_id"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        mallory.responses.delete(mine.id)
    assert alice.responses.retrieve(mine.id).id == mine.id


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "name": "f", "parameters": {}}]}, "tools"),
        ({"reasoning": {"effort": "high"}}, "reasoning"),
        ({"background": True}, "background"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input",
        ),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": "1"}]}, "input"),
        ({"text": {"format": {"type": "json_schema"}}}, "text"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(
    hearth: Running, extra: dict, param: str
) -> None:
    key = api_key(hearth, create_user(hearth))
    body = {"model": DEFAULT_CHAT_MODEL, "input": "Hi"} | extra
    reply = httpx.post(
        f"{hearth.url}/v1/responses", json=body, headers={"authorization": f"Bearer {key}"}
    )
    assert reply.status_code == 400, reply.text
    assert param in (reply.json()["error"]["param"] or ""), reply.json()


def test_json_output_through_the_grammar(hearth: Running) -> None:
    client = _client(hearth)
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
    }
    got = client.responses.create(
        model=DEFAULT_CHAT_MODEL, input="What is 2 + 2? Answer in JSON.", max_output_tokens=40,
        text={"format": {"type": "json_schema", "name": "sum", "schema": schema}},
    )  # fmt: skip
    assert isinstance(json.loads(got.output_text)["answer"], int)
