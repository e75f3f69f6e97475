"""The lab against the model this platform ships: SmolLM2 on llama.cpp's server, through
Hearth's own gateway. With the model's own GGUF as the client's tokenizer, the prompt
lengths are exact and the client's count of the output agrees with the server's."""

from __future__ import annotations

import asyncio

from hearth.config import DEFAULT_CHAT_MODEL
from hearth.engines.llamacpp import bundled_model_path
from hearth.lab.datasets import Data, Lengths, load_tokenizer
from hearth.lab.metrics import Options
from hearth.lab.profiles import Profile, Stage
from hearth.lab.runner import MemoryStore, Runner, RunSpec
from tests._accounts import api_key, create_user
from tests._server import Running


def test_smollm2_through_the_gateway_with_its_own_tokenizer(hearth: Running) -> None:
    spec = RunSpec(
        base_url=f"{hearth.url}/v1",
        model=DEFAULT_CHAT_MODEL,
        profile=Profile(stages=[Stage(kind="concurrency", concurrency=4, requests=8)]),
        data=Data(input=Lengths(mean=64), output=Lengths(mean=24)),
        options=Options(warmup=0, cooldown=0),
        tokenizer=str(bundled_model_path()),
    )
    key = api_key(hearth, create_user(hearth))
    store = MemoryStore()
    runner = Runner(spec, store, load_tokenizer(spec.tokenizer), api_key=key)
    outcome = asyncio.run(runner.run())
    [(_, s)] = outcome.summaries
    assert s.valid, s.invalid_because
    assert s.succeeded == 8 and s.token_source == "server"
    records = store.saved[0]
    # At most the 24 tokens asked for; the client's count of the text is the server's
    # (a token or two apart where text merges at a chunk edge would show up here).
    assert all(0 < (r.server_output_tokens or 0) <= 24 for r in records)
    assert s.token_mismatch is not None and s.token_mismatch <= 0.02, s.flags
    # The chat template adds its own tokens around the prompt: the server counts more.
    assert all((r.server_input_tokens or 0) > (r.input_tokens or 0) == 64 for r in records)
    assert s.ttft.count == 8 and s.tpot.count > 0 and s.output_throughput > 0
