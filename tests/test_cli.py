"""The `hearth` command, run as a real process: `up` end to end on an empty data directory,
a second `up` on the same directory, graceful shutdown, and readable errors."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from hearth.config import DEFAULT_CHAT_MODEL
from hearth.db.migrate import head_revision
from tests._server import free_port

HEARTH = [sys.executable, "-m", "hearth"]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    return {**env, "HEARTH_DATA_DIR": str(data_dir), **extra}


class Hearth:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [*HEARTH, "up", "--port", str(port)],
            env=_env(data_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr:
            for line in self.proc.stderr:
                self.output.append(line)
                self._lines.put(line)
        self._lines.put(None)

    def wait_ready(self, timeout: float = 120) -> float:
        started = time.monotonic()
        while (left := timeout - (time.monotonic() - started)) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError("hearth up exited:\n" + "".join(self.output))
            if "Hearth is ready" in line:
                return time.monotonic() - started
        raise AssertionError("hearth up not ready:\n" + "".join(self.output))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        return code


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "hearth-data"


def _postmaster_running(data_dir: Path) -> bool:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return False
    return psutil.pid_exists(int(pid_file.read_text().split()[0]))


def test_up_serves_chat_and_embeddings_and_restarts_on_same_data(data_dir: Path) -> None:
    port = free_port()
    hearth = Hearth(data_dir, port)
    try:
        hearth.wait_ready()
        reply = httpx.post(
            f"{hearth.url}/v1/chat/completions",
            timeout=60,
            json={"model": DEFAULT_CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"].strip()
        vectors = httpx.post(
            f"{hearth.url}/v1/embeddings",
            json={"model": "all-minilm-l6-v2", "input": ["one", "two"]},
        ).json()["data"]
        assert [len(v["embedding"]) for v in vectors] == [384, 384]
        # A fresh install asks for its administrator first.
        page = httpx.get(f"{hearth.url}/", follow_redirects=True)
        assert page.status_code == 200 and "Create the administrator account" in page.text
        assert _postmaster_running(data_dir)
    finally:
        code = hearth.stop()
    assert code == 0, "".join(hearth.output)
    assert not _postmaster_running(data_dir), "embedded PostgreSQL left running"

    again = Hearth(data_dir, port)
    try:
        again.wait_ready()
        assert httpx.get(f"{again.url}/readyz").json()["status"] == "ready"
    finally:
        assert again.stop() == 0
    log = "".join(again.output)
    assert f"database schema at revision {head_revision()}" in log


def test_sigterm_lets_a_stream_finish(data_dir: Path) -> None:
    hearth = Hearth(data_dir, free_port())
    try:
        hearth.wait_ready()
        body = {
            "model": DEFAULT_CHAT_MODEL,
            "stream": True,
            "max_tokens": 60,
            "messages": [{"role": "user", "content": "Tell me a story."}],
        }
        with httpx.stream(
            "POST", f"{hearth.url}/v1/chat/completions", json=body, timeout=60
        ) as resp:
            lines = resp.iter_lines()
            next(lines)
            hearth.proc.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        assert hearth.proc.wait(timeout=60) == 0
    finally:
        if hearth.proc.poll() is None:
            hearth.stop()


def run(
    *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HEARTH, *args], capture_output=True, text=True, timeout=120, env=env, input=input
    )


def test_port_in_use_is_a_readable_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("up", "--port", str(port), env=_env(tmp_path))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_is_a_readable_error(tmp_path: Path) -> None:
    result = run("up", env=_env(tmp_path, HEARTH_PORT="eighty"))
    assert result.returncode == 2
    assert "bad configuration: port:" in result.stderr and "Traceback" not in result.stderr

    result = run("up", env=_env(tmp_path, HEARTH_RAG_CHUNK_OVERLAP="500"))
    assert result.returncode == 2 and "rag_chunk_overlap" in result.stderr


def test_missing_model_file_is_a_readable_error(tmp_path: Path) -> None:
    engines = '[{"kind": "llamacpp", "models": [{"name": "x", "path": "/nope/model.gguf"}]}]'
    result = run("up", env=_env(tmp_path, HEARTH_ENGINES=engines))
    assert result.returncode == 2
    assert "model file /nope/model.gguf for 'x' does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_needs_a_database_url(tmp_path: Path) -> None:
    result = run("serve", env=_env(tmp_path))
    assert result.returncode == 2 and "HEARTH_DATABASE_URL" in result.stderr


def test_migrate_against_a_database_url(database_url: str, tmp_path: Path) -> None:
    result = run("migrate", env=_env(tmp_path, HEARTH_DATABASE_URL=database_url))
    assert result.returncode == 0, result.stderr
    assert f"database schema at revision {head_revision()}" in result.stdout


def test_users_create_the_first_admin_headless(database_url: str, tmp_path: Path) -> None:
    env = _env(tmp_path, HEARTH_DATABASE_URL=database_url)
    made = run(
        "users",
        "create",
        "--admin",
        "Ops@Example.org",
        "--password-stdin",
        env=env,
        input="a long password\n",
    )
    assert made.returncode == 0, made.stderr
    assert "created admin Ops@Example.org" in made.stdout
    again = run(
        "users",
        "create",
        "ops@example.org",
        "--password-stdin",
        env=env,
        input="another password\n",
    )
    assert again.returncode == 1 and "exists" in again.stderr and "Traceback" not in again.stderr
    short = run("users", "create", "x@example.org", "--password-stdin", env=env, input="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    bad = run("users", "create", "not-an-email", "--password-stdin", env=env, input="x" * 9)
    assert bad.returncode == 1 and "not an email" in bad.stderr
    listed = run("users", "list", env=env)
    assert listed.stdout.split() == ["Ops@Example.org", "admin", "active", "Ops"]
    invited = run("users", "invite", "new@example.org", env=env)
    assert invited.returncode == 0, invited.stderr
    link = re.search(r"(http://\S+/signup\?invite=\S+)", invited.stdout)
    assert link and "created user new@example.org" in invited.stdout
    listed = run("users", "list", env=env)
    assert "new@example.org  user   pending" in listed.stdout


def test_unreachable_database_is_a_readable_error(tmp_path: Path) -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    result = run("migrate", env=_env(tmp_path, HEARTH_DATABASE_URL=url))
    assert result.returncode == 1
    assert "cannot migrate" in result.stderr and "Traceback" not in result.stderr


def test_models_lists_the_configuration(tmp_path: Path) -> None:
    result = run("models", env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "TYPE", "ENGINE", "KIND", "SOURCE"]
    assert any(line.startswith(DEFAULT_CHAT_MODEL) and "SmolLM2" in line for line in lines)
    assert any(line.startswith("all-minilm-l6-v2") for line in lines)


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["up"],
        ["serve"],
        ["engine"],
        ["migrate"],
        ["models"],
        ["worker"],
        ["ingest"],
        ["search"],
        ["keys"],
        ["users", "create"],
        ["catalog"],
        ["catalog", "hardware", "add"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_ingest_a_folder_then_search(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "tides.md").write_text("# Tides\n\nThe moon's pull raises the spring tides.\n")
    (docs / "sub" / "bread.txt").write_text("Knead the dough for ten minutes, then let it rise.")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    (docs / ".hidden.md").write_text("# Hidden\n\nnever ingested")
    env = _env(tmp_path / "data")

    result = run("ingest", str(docs), "--collection", "notes", env=env)
    assert result.returncode == 1, result.stderr  # one file failed, and says why
    assert "2 ready" in result.stdout and "1 failed" in result.stdout
    assert "broken.pdf" in result.stderr

    found = run("search", "how long to knead dough", "-c", "notes", "-k", "1", env=env)
    assert found.returncode == 0, found.stderr
    assert "bread.txt" in found.stdout and "Knead the dough" in found.stdout

    missing = run("search", "x", "-c", "nope", env=env)
    assert missing.returncode == 1 and "no collection named 'nope'" in missing.stderr


def test_ingest_and_search_act_as_a_real_account(tmp_path: Path) -> None:
    """`hearth ingest` makes the collection the first admin's (so their key and pages see
    it), or the account `--as` names; progress shows in a log (no terminal here); `search
    --explain` says how each side ranked a result; and keys belong to real accounts."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tides.md").write_text("# Tides\n\nThe moon's pull raises the spring tides.\n")
    env = _env(tmp_path / "data")
    for email, admin in (("ops@example.org", ["--admin"]), ("bea@example.org", [])):
        made = run(
            "users", "create", *admin, email, "--password-stdin", env=env, input="a long password\n"
        )
        assert made.returncode == 0, made.stderr

    result = run("ingest", str(docs), "-c", "notes", env=env)
    assert result.returncode == 0, result.stderr
    assert "ingesting: 1/1 done (0 failed)" in result.stderr and "documents/s" in result.stderr
    explained = run("search", "spring tides", "-c", "notes", "--explain", env=env)
    assert explained.returncode == 0, explained.stderr
    assert "vector rank 1 (cosine" in explained.stdout and "text rank 1 (BM25" in explained.stdout
    # Bea cannot see the admin's collection; as herself she gets one of her own.
    hidden = run("search", "tides", "-c", "notes", "--as", "Bea@Example.org", env=env)
    assert hidden.returncode == 1 and "no collection named 'notes'" in hidden.stderr
    assert (
        run("ingest", str(docs), "-c", "notes", "--as", "bea@example.org", env=env).returncode == 0
    )
    mine = run("search", "tides", "-c", "notes", "--as", "bea@example.org", env=env)
    assert mine.returncode == 0 and "tides.md" in mine.stdout
    nobody = run("ingest", str(docs), "-c", "notes", "--as", "nobody@example.org", env=env)
    assert nobody.returncode == 1
    assert "cannot act as nobody@example.org: no account" in nobody.stderr

    key = run("keys", "create", "ci", "--owner", "BEA@example.org", env=env)
    assert key.returncode == 0, key.stderr
    listed = run("keys", "list", env=env)
    assert "ci" in listed.stdout
    for owner in ("nobody@example.org", "not-a-user-id"):
        refused = run("keys", "create", "x", "--owner", owner, env=env)
        assert refused.returncode == 1 and f"cannot act as {owner}: no account" in refused.stderr
        assert "Traceback" not in refused.stderr
    team = run("keys", "create", "x", "--team", "no-such-team", env=env)
    assert team.returncode == 1 and "no team no-such-team" in team.stderr
