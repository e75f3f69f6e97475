"""Schemathesis against a running Hearth: every operation of /openapi.json, examples,
coverage, fuzzing and the stateful phase, on a fresh database with throwaway accounts,
must draw 0 server errors (and never a dropped connection).

Bounded for the suite (25 examples per operation, a fixed seed: about a minute). Run it
longer, or with other seeds, through the environment:

    HEARTH_FUZZ_EXAMPLES=200 HEARTH_FUZZ_SEED=7 .venv/bin/python -m pytest tests/http/test_fuzz.py

Chat models come from a fake OpenAI upstream (a generation per fuzzed request would take
the real model minutes); embeddings from the real embedder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hearth.config import EmbedderEngineConfig, ModelConfig, OpenAIEngineConfig, Settings
from hearth.server import create_app
from tests._accounts import api_key, create_user
from tests._server import Running, running
from tests.fakes.openai_upstream import FakeOpenAIUpstream

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.fixture(scope="module")
def site(postgres, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    with FakeOpenAIUpstream() as upstream:
        settings = Settings(
            database_url=postgres.new_database(),
            data_dir=tmp_path_factory.mktemp("fuzz"),
            engines=[
                EmbedderEngineConfig(),
                OpenAIEngineConfig(
                    name="fake", base_url=upstream.base_url, models=[ModelConfig(name="ok")]
                ),
            ],
        )
        with running(create_app(settings)) as server:
            yield server


def test_no_operation_answers_a_server_error(site: Running, tmp_path: Path) -> None:
    key = api_key(site, create_user(site, admin=True))
    junit = tmp_path / "junit.xml"
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{site.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        os.environ.get("HEARTH_FUZZ_EXAMPLES", "25"),
        "--seed",
        os.environ.get("HEARTH_FUZZ_SEED", "1"),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--continue-on-failure",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(junit),
    ]
    run = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=1200)
    summary = run.stdout[run.stdout.rfind("SUMMARY") :]
    assert "Stateful" in summary, run.stdout[-3000:]  # the phase ran
    assert run.returncode == 0, run.stdout[-6000:]
    assert "ST101" not in run.stdout
    assert junit.exists()
