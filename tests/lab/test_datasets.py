"""Prompts of chosen token lengths, ShareGPT files, a shared prefix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hearth.engines.llamacpp import bundled_model_path
from hearth.errors import InvalidRequest
from hearth.lab.datasets import Data, Lengths, WordCounter, load_tokenizer, prompts


@pytest.fixture(scope="module")
def gguf() -> str:
    """The shipped chat model's own file: its vocabulary is the tokenizer."""
    return str(bundled_model_path())


def test_synthetic_prompts_are_token_exact_with_the_models_tokenizer(gguf: str) -> None:
    tokenizer = load_tokenizer(gguf)
    data = Data(input=Lengths(mean=200, stdev=50, min=20, max=400), output=Lengths(mean=32))
    got = prompts(data, tokenizer, 40)
    lengths = [len(tokenizer.encode(p.text)) for p in got]
    assert lengths == [p.input_tokens for p in got]
    assert len(set(lengths)) > 10 and all(20 <= n <= 400 for n in lengths)
    exact = prompts(Data(input=Lengths(mean=123), output=Lengths(mean=7)), tokenizer, 20)
    assert {p.input_tokens for p in exact} == {123} and {p.max_tokens for p in exact} == {7}
    # The same spec, the same prompts: a resumed run asks what the first attempt asked.
    assert [p.text for p in prompts(data, tokenizer, 40)] == [p.text for p in got]


def test_a_shared_prefix_starts_every_prompt(gguf: str) -> None:
    tokenizer = load_tokenizer(gguf)
    got = prompts(Data(input=Lengths(mean=50), prefix_tokens=300), tokenizer, 5)
    prefix = got[0].text.split("\n")[0]
    assert len(tokenizer.encode(prefix)) == 300
    assert all(p.text.startswith(prefix + "\n") for p in got)
    assert len({p.text for p in got}) == 5


def test_sharegpt_files_give_their_questions_and_reply_lengths(tmp_path: Path) -> None:
    path = tmp_path / "sharegpt.json"
    rows = [
        {
            "id": "a",
            "conversations": [
                {"from": "human", "value": "one two three"},
                {"from": "gpt", "value": "four five"},
            ],
        },
        {"id": "b", "conversations": [{"from": "gpt", "value": "no question first"}]},
        {
            "id": "c",
            "conversations": [
                {"from": "human", "value": "six"},
                {"from": "gpt", "value": "seven eight nine ten"},
            ],
        },
    ]
    path.write_text(json.dumps(rows))
    got = prompts(Data(kind="sharegpt", path=str(path)), WordCounter(), 3)
    assert [(p.text, p.max_tokens) for p in got] == [
        ("one two three", 2),
        ("six", 4),
        ("one two three", 2),
    ]
    path.write_text("[]")
    with pytest.raises(InvalidRequest, match="no conversation"):
        prompts(Data(kind="sharegpt", path=str(path)), WordCounter(), 1)
    with pytest.raises(InvalidRequest, match="no such file"):
        load_tokenizer(str(tmp_path / "missing.gguf"))
