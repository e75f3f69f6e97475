"""What each request asks: synthetic prompts of chosen token lengths, or the conversations of
a ShareGPT-format file, optionally all behind one shared prefix (prefix-cache studies).

Lengths are token-exact when the model's tokenizer is known (a GGUF file's own vocabulary,
or a `tokenizer.json`), and otherwise counted in words and said to be approximate.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hearth.errors import InvalidRequest

# Plain words, so a synthetic prompt tokenizes like text and not like noise.
_WORDS = (
    "the of and to in is was for on that with as by at from his an were are which this be "
    "or has had not first one their its new after who they have her she two been other when "
    "there all during into school time may years more most only over city some world would "
    "where later up such used many can state about national out known university united then "
    "made early three part under north south river team group album family name area these "
    "well system work season between people like both century film water government music "
    "number history several river light stone garden market winter summer bridge station"
).split()


class Tokenizer(Protocol):
    name: str

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class WordCounter:
    """No tokenizer known: a word is a token. Counts made with it are labelled approximate."""

    name = "words (approximate)"

    def __init__(self) -> None:
        self._vocab: dict[str, int] = {}
        self._words: list[str] = []

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            if word not in self._vocab:
                self._vocab[word] = len(self._words)
                self._words.append(word)
            ids.append(self._vocab[word])
        return ids

    def decode(self, ids: list[int]) -> str:
        return " ".join(self._words[i] for i in ids)


class GgufTokenizer:
    """The vocabulary of a GGUF model file, through llama.cpp (the weights are not loaded)."""

    def __init__(self, path: Path) -> None:
        from llama_cpp import Llama  # the lab imports it only when a GGUF is named

        self.name = f"gguf:{path.name}"
        self._llama = Llama(model_path=str(path), vocab_only=True, verbose=False)

    def encode(self, text: str) -> list[int]:
        return list(self._llama.tokenize(text.encode(), add_bos=False, special=False))

    def decode(self, ids: list[int]) -> str:
        return self._llama.detokenize(ids).decode("utf-8", errors="replace")


class JsonTokenizer:
    """A Hugging Face `tokenizer.json`."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer as HfTokenizer

        self.name = f"tokenizer.json:{path.parent.name or path.name}"
        self._tok = HfTokenizer.from_file(str(path))

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)


def load_tokenizer(spec: str | None) -> Tokenizer:
    """`None`: words; a `.gguf` path; a `tokenizer.json` path (or its folder)."""
    if not spec:
        return WordCounter()
    path = Path(spec)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise InvalidRequest(f"tokenizer {spec!r}: no such file", param="tokenizer")
    if path.suffix == ".gguf":
        return GgufTokenizer(path)
    return JsonTokenizer(path)


class Lengths(BaseModel):
    """A length distribution in tokens: normal around `mean`, clipped to [min, max]."""

    model_config = ConfigDict(extra="forbid")

    mean: int = Field(ge=1, le=1_000_000)
    stdev: float = Field(default=0.0, ge=0)
    min: int = Field(default=1, ge=1)
    max: int | None = Field(default=None, ge=1)

    def draw(self, rng: random.Random) -> int:
        n = round(rng.gauss(self.mean, self.stdev)) if self.stdev else self.mean
        return max(self.min, min(n, self.max or n))


class Data(BaseModel):
    """Where prompts come from."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["synthetic", "sharegpt"] = "synthetic"
    input: Lengths = Field(default_factory=lambda: Lengths(mean=128))
    output: Lengths = Field(default_factory=lambda: Lengths(mean=64))
    path: str | None = Field(default=None, description="ShareGPT: the JSON file.")
    prefix_tokens: int = Field(
        default=0, ge=0, le=1_000_000, description="A prefix every prompt shares."
    )
    seed: int = 0

    @model_validator(mode="after")
    def _path_for_files(self) -> Data:
        if self.kind == "synthetic" and self.path is not None:
            raise ValueError("a synthetic dataset reads no file: give kind sharegpt with a path")
        return self


@dataclass(frozen=True)
class Prompt:
    text: str
    input_tokens: int  # as the tokenizer counts the text (prefix included)
    max_tokens: int  # the output length asked for


def _text_of(tokenizer: Tokenizer, rng: random.Random, tokens: int) -> str:
    """Text of exactly `tokens` tokens where the tokenizer allows it: a cut can merge with
    its neighbour on re-encoding, so the cut moves until the count is right."""
    ids: list[int] = []
    while len(ids) < tokens + 8:
        ids += tokenizer.encode(" ".join(rng.choice(_WORDS) for _ in range(tokens + 8)) + " ")
    n, text = tokens, ""
    for _ in range(8):
        text = tokenizer.decode(ids[:n])
        got = len(tokenizer.encode(text))
        if got == tokens:
            break
        n = max(1, min(len(ids), n + tokens - got))
    return text


def prompts(
    data: Data, tokenizer: Tokenizer, count: int, lengths: list[tuple[int, int]] | None = None
) -> list[Prompt]:
    """`count` prompts, the same for the same data spec (a resumed run asks the same);
    with `lengths` (a replayed trace's), synthetic prompts of exactly those token counts."""
    rng = random.Random(data.seed)
    prefix = _text_of(tokenizer, rng, data.prefix_tokens) + "\n" if data.prefix_tokens else ""
    if data.kind == "sharegpt" and lengths is None:
        return _sharegpt(data, tokenizer, count, prefix)
    out = []
    for i in range(count):
        if lengths is not None:
            n_in, n_out = lengths[i]
        else:
            n_in, n_out = data.input.draw(rng), data.output.draw(rng)
        text = prefix + _text_of(tokenizer, rng, n_in)
        out.append(Prompt(text, len(tokenizer.encode(text)), n_out))
    return out


def _sharegpt(data: Data, tokenizer: Tokenizer, count: int, prefix: str) -> list[Prompt]:
    if not data.path:
        raise InvalidRequest("a sharegpt dataset needs a path", param="data.path")
    try:
        rows = json.loads(Path(data.path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidRequest(f"{data.path}: {exc}", param="data.path") from exc
    pairs: list[tuple[str, str]] = []
    for row in rows if isinstance(rows, list) else []:
        turns = row.get("conversations") if isinstance(row, dict) else None
        human = _first(turns, lambda t: t.get("from") in {"human", "user"})
        reply = _first(turns, lambda t: t.get("from") in {"gpt", "assistant", "chatgpt"})
        if human and reply:
            pairs.append((human, reply))
    if not pairs:
        raise InvalidRequest(
            f"{data.path}: no conversation with a human turn and a reply", param="data.path"
        )
    out = []
    for i in range(count):  # cycles through the file when it is shorter than the run
        question, answer = pairs[i % len(pairs)]
        text = prefix + question
        out.append(Prompt(text, len(tokenizer.encode(text)), max(1, len(tokenizer.encode(answer)))))
    return out


def _first(turns: object, pick: Callable[[dict], bool]) -> str | None:
    for turn in turns if isinstance(turns, list) else []:
        if isinstance(turn, dict) and pick(turn) and isinstance(turn.get("value"), str):
            return turn["value"]
    return None
