"""The image, as deploy/image/build.sh builds it (`make image`), started the way a
Kubernetes pod starts it, without a container runtime: `podman run` is refused on this
machine, so the image's root filesystem is mounted read-only (`podman image mount`) and
its entrypoint run in it by `chroot --userspec` as the image's user, with the image's own
environment, in a private mount namespace holding /proc, /dev and a tmpfs on each volume
the image declares: what a pod with `readOnlyRootFilesystem` and emptyDirs gives it.

`hearth --version`; `hearth engine` answers a chat completion with the bundled SmolLM2;
`hearth serve` against the test PostgreSQL (its socket bound in) answers /healthz and
/readyz, with the engine as its gateway's only engine. Sizes and start-to-ready times go
to test-artifacts/image.json for bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest

from hearth.config import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDING_MODEL
from tests._server import free_port

IMAGE = os.environ.get("HEARTH_TEST_IMAGE", "")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TOKEN = "image-smoke-token"

if not IMAGE and os.environ.get("CI") != "true":
    pytest.skip(
        "no image to test: `make test` builds one (HEARTH_TEST_IMAGE names it)",
        allow_module_level=True,
    )


@dataclass
class Image:
    ref: str
    root: Path
    config: dict
    size: int

    @property
    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config.get("Env", []))


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    assert IMAGE, "CI builds the image first: HEARTH_TEST_IMAGE must name it (make test)"
    [info] = json.loads(_podman("image", "inspect", IMAGE))
    root = Path(_podman("image", "mount", IMAGE).strip())
    try:
        yield Image(IMAGE, root, info["Config"], int(info["Size"]))
    finally:
        _podman("image", "unmount", IMAGE)


def _podman(*args: str) -> str:
    return subprocess.run(["podman", *args], check=True, capture_output=True, text=True).stdout


class InImage:
    """A command of the image's, run as its user in its read-only root (see the module)."""

    def __init__(
        self, image: Image, args: list[str], env: dict[str, str], sockets: list[Path] = ()
    ) -> None:
        root = shlex.quote(str(image.root))
        mounts = [
            f"mount -t proc proc {root}/proc",
            f"mount --rbind /dev {root}/dev",
            f"mount -t tmpfs -o mode=1777 tmpfs {root}/tmp",
            # The data volume, writable by the image's user only (an emptyDir with fsGroup).
            f"mount -t tmpfs -o mode=0750,uid=10001,gid=10001 tmpfs {root}/var/lib/hearth",
            f"mount -t tmpfs -o mode=0755 tmpfs {root}/run",
        ]
        for socket in sockets:  # a host socket, reachable at /run/<its name>
            target = f"{root}/run/{shlex.quote(socket.name)}"
            mounts += [f"touch {target}", f"mount --bind {shlex.quote(str(socket))} {target}"]
        user = image.config["User"]
        command = [*image.config["Entrypoint"], *args]
        environment = [f"{k}={v}" for k, v in {**image.env, **env}.items()]
        script = " && ".join(
            [
                *mounts,
                f"cd {root}",
                "exec chroot --userspec="
                + shlex.quote(user)
                + f" {root} /usr/bin/env -i "
                + " ".join(shlex.quote(part) for part in [*environment, *command]),
            ]
        )
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

        self._output: str | None = None

    def output(self, timeout: float = 60) -> str:
        """What it printed, once it has ended (waits for that)."""
        if self._output is None:
            self._output, _ = self.proc.communicate(timeout=timeout)
        return self._output

    def stop(self) -> int:
        """SIGTERM, as the kubelet sends it; its exit status (0: a clean shutdown)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.output(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.output()
        return self.proc.returncode


def _wait_ready(url: str, proc: InImage, timeout: float = 240) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.proc.poll() is not None:
            pytest.fail(f"it exited with {proc.proc.returncode}:\n{proc.output()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.stop()
    pytest.fail(f"not ready in {timeout} s:\n{proc.output()}")


def test_the_image_is_small_non_root_and_has_no_build_tools(image: Image) -> None:
    assert image.config["User"] == "10001:10001"
    assert image.config["Entrypoint"] == ["hearth"]
    assert set(image.config["Volumes"]) == {"/var/lib/hearth", "/tmp"}
    labels = image.config["Labels"]
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    for tool in ("usr/bin/gcc", "usr/bin/cc", "usr/bin/make", "opt/hearth/bin/pip"):
        assert not (image.root / tool).exists(), f"{tool} is in the final image"
    site = image.root / "opt/hearth/lib/python3.11/site-packages"
    assert not (site / "torch").exists() and not (site / "sentence_transformers").exists()
    models = image.root / image.env["HEARTH_MODELS_DIR"].lstrip("/")
    assert list(models.glob("minilm-int8-*.onnx")), "the embedder's ONNX file is built in"
    # llama.cpp's own server, beside Hearth's Python: the CPU engine batches with it.
    assert (image.root / "opt/hearth/bin/llama-server").is_file()
    assert image.size < 1.5e9


@pytest.fixture(scope="module")
def timings() -> Iterator[dict[str, float]]:
    found: dict[str, float] = {}
    yield found
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "image.json").write_text(json.dumps({"image": IMAGE, **found}, indent=2))


def test_version(image: Image) -> None:
    assert InImage(image, ["--version"], {}).output().strip() == "hearth, version 0.1.0"


@pytest.fixture(scope="module")
def engine_url(image: Image, timings: dict[str, float]) -> Iterator[str]:
    port = free_port()
    env = {"HEARTH_HOST": "127.0.0.1", "HEARTH_PORT": str(port), "HEARTH_ENGINE_API_KEY": TOKEN}
    engine = InImage(image, ["engine"], env)
    url = f"http://127.0.0.1:{port}"
    try:
        timings["engine_start_to_ready_seconds"] = round(_wait_ready(url, engine), 2)
        timings["image_bytes"] = image.size
        yield url
    finally:
        assert engine.stop() == 0, engine.output()


def test_the_engine_answers_a_chat_completion(engine_url: str) -> None:
    client = openai.OpenAI(base_url=f"{engine_url}/v1", api_key=TOKEN, max_retries=0)
    answer = client.chat.completions.create(
        model=DEFAULT_CHAT_MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
        temperature=0,
    )
    assert answer.choices[0].message.content
    vectors = client.embeddings.create(model=DEFAULT_EMBEDDING_MODEL, input="hello")
    assert len(vectors.data[0].embedding) == 384
    # Served by llama-server (8 slots), not by the one-at-a-time in-process fallback: the
    # image's read-only root leaves it /tmp for its socket.
    metrics = httpx.get(f"{engine_url}/metrics").text
    assert f'hearth_engine_slots{{model="{DEFAULT_CHAT_MODEL}"}} 8.0' in metrics


def test_serve_is_healthy_and_ready_against_postgres(
    image: Image, engine_url: str, postgres, timings: dict[str, float]
) -> None:
    url = postgres.new_database()
    parts = urlsplit(url)
    socket_dir = Path(parse_qs(parts.query)["host"][0])
    port = parse_qs(parts.query).get("port", ["5432"])[0]
    socket = socket_dir / f".s.PGSQL.{port}"
    inside = url.replace(f"host={socket_dir}", "host=/run")
    engines = [
        {
            "kind": "openai",
            "name": "cpu",
            "base_url": f"{engine_url}/v1",
            "api_key": TOKEN,
            "models": [
                {"name": DEFAULT_CHAT_MODEL},
                {"name": DEFAULT_EMBEDDING_MODEL, "type": "embedding"},
            ],
        }
    ]
    web_port = free_port()
    env = {
        "HEARTH_HOST": "127.0.0.1",
        "HEARTH_PORT": str(web_port),
        "HEARTH_DATABASE_URL": inside,
        "HEARTH_ENGINES": json.dumps(engines),
    }
    serve = InImage(image, ["serve"], env, sockets=[socket])
    web = f"http://127.0.0.1:{web_port}"
    try:
        timings["serve_start_to_ready_seconds"] = round(_wait_ready(web, serve), 2)
        assert httpx.get(f"{web}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{web}/readyz").json()
        assert ready["checks"] == {"database": "ok", "engine:cpu": "ok"}
        models = httpx.get(f"{web}/v1/models").json()["data"]
        assert {m["id"] for m in models} == {DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDING_MODEL}
    finally:
        assert serve.stop() == 0, serve.output()
