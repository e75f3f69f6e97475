"""The chart's platform, started in processes from what the chart renders (tests/deploy/
_cluster.py says how each cluster part maps onto this machine): two `hearth serve`, one
`hearth worker`, one `hearth engine`, Redis and PostgreSQL, behind nginx with the Ingress's
streaming settings. Through it: a chat, a document ingestion, a streamed completion, a
benchmark Job stopped by SIGTERM and resumed; then one web replica is killed with SIGKILL
during ten streams."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from hearth.chat.schemas import STALE_STREAM_SECONDS
from hearth.config import DEFAULT_CHAT_MODEL
from tests.deploy import _helm
from tests.deploy._cluster import HEARTH, Cluster, Pod, _clean_environment, run

# The Minikube example, with two web replicas and a benchmark of the gateway: what `helm
# install -f dev-minikube.yaml --set web.replicas=2` renders, with one `lab.benchmarks`
# entry (an open-loop stage: its schedule, 10 s, outlasts the moment it is stopped).
BENCHMARK = {
    "name": "smoke",
    "model": DEFAULT_CHAT_MODEL,
    "apiKey": {"secretName": "bench-key", "key": "api-key"},
    "args": [
        *("--stage", "constant:4", "--requests", "40"),
        *("--input-tokens", "32", "--output-tokens", "8"),
    ],
}
VALUES = ("dev-minikube.yaml",)
SET = {"web.replicas": 2, "lab.benchmarks": [BENCHMARK]}


@pytest.fixture(scope="module")
def cluster(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    objects = _helm.render(VALUES, SET)
    platform = Cluster(objects, postgres.new_database(), tmp_path_factory.mktemp("cluster"))
    try:
        platform.start_redis("hearth-redis", "hearth-redis")
        engine = platform.pod("hearth-engine-cpu", port="http")
        engine.start()
        platform.route("hearth-engine-cpu", "hearth-engine-cpu", 8081)
        engine.wait_ready()
        run(platform.pod("hearth-migrate", one_off=True))  # the hook Job, before the workloads
        webs = [platform.pod("hearth-web", i, port="http") for i in range(2)]
        worker = platform.pod("hearth-worker", port="health")
        for pod in (*webs, worker):
            pod.start()
        for pod in (*webs, worker):
            pod.wait_ready()
        platform.start_ingress("hearth-web")
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def ingress(cluster: Cluster) -> str:
    return f"http://127.0.0.1:{cluster.ingress_port}"


@pytest.fixture(scope="module")
def key(cluster: Cluster) -> str:
    """An admin's API key, made as an operator would: `kubectl exec deploy/hearth-web --
    hearth users create --admin`, then `hearth keys create --owner`."""
    web = cluster.pods["hearth-web"][0]
    users = cluster.pod("hearth-web", 9, one_off=True)
    users.args = ["users", "create", "--admin", "ops@example.org", "--password-stdin"]
    created = run(users, stdin="a long enough password\n")
    user_id = created.strip().rsplit("(", 1)[1].rstrip(")")
    keys = cluster.pod("hearth-web", 10, one_off=True)
    keys.args = ["keys", "create", "smoke", "--owner", user_id]
    assert web.env["HEARTH_DATABASE_URL"] == keys.env["HEARTH_DATABASE_URL"]
    return run(keys).splitlines()[0].strip()


def _events(response: httpx.Response) -> list[tuple[str, str]]:
    events, name = [], "message"
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, line.removeprefix("data: ")))
            name = "message"
    return events


def test_a_chat_through_the_ingress(ingress: str, key: str) -> None:
    auth = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=ingress, headers=auth, timeout=120) as http:
        chat = http.post("/api/chats", json={}).raise_for_status().json()
        with http.stream(
            "POST", f"/api/chats/{chat['id']}/messages", json={"content": "Say hello."}
        ) as answer:
            assert answer.status_code == 200
            events = _events(answer)
        names = [name for name, _ in events]
        assert names[0] == "question" and "delta" in names and names[-1] == "done"
        stored = http.get(f"/api/chats/{chat['id']}/messages").json()["items"]
        assert [m["role"] for m in stored] == ["user", "assistant"]
        assert stored[1]["status"] == "complete" and stored[1]["content"]


def test_a_document_is_ingested_by_the_worker_and_found(ingress: str, key: str) -> None:
    auth = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=ingress, headers=auth, timeout=60) as http:
        collection = http.post("/api/collections", json={"name": "ops"}).raise_for_status().json()
        text = b"# Runbook\n\nThe kraken tide table is kept in the north tower.\n"
        uploaded = (
            http.post(
                f"/api/collections/{collection['id']}/documents",
                files={"file": ("runbook.md", text, "text/markdown")},
            )
            .raise_for_status()
            .json()
        )
        for _ in range(600):
            status = http.get(f"/api/documents/{uploaded['id']}").json()["status"]
            if status in ("ready", "failed"):
                break
            time.sleep(0.1)
        assert status == "ready"
        hits = http.post(
            f"/api/collections/{collection['id']}/search",
            json={"query": "where is the kraken tide table", "k": 1},
        ).json()
        assert "north tower" in json.dumps(hits)


def test_a_streamed_completion_through_the_ingress(ingress: str, key: str) -> None:
    client = openai.OpenAI(base_url=f"{ingress}/v1", api_key=key, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model=DEFAULT_CHAT_MODEL,
            messages=[{"role": "user", "content": "Count to five."}],
            max_tokens=24,
            stream=True,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _show(pod: Pod, run_id: str) -> dict | None:
    """`hearth bench show RUN --format json` in the pod's environment; None before the run."""
    done = subprocess.run(
        [*HEARTH, "bench", "show", run_id, "--format", "json"],
        env={**_clean_environment(), **pod.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(done.stdout) if done.returncode == 0 else None


def test_a_benchmark_job_stopped_at_a_checkpoint_resumes_its_run(
    cluster: Cluster, key: str
) -> None:
    """The benchmark Job's pod as rendered: SIGTERM (a spot node's notice) stops it at a
    checkpoint with exit 75 (the Job's podFailurePolicy ignores it), the next pod runs the
    same command and finishes the same run, and one more exits 0 at once."""
    # What the operator makes: kubectl create secret generic bench-key --from-literal=...
    secret = {"kind": "Secret", "metadata": {"name": "bench-key"}, "stringData": {"api-key": key}}
    cluster.objects.append(secret)
    [job] = [
        o
        for o in cluster.objects
        if o["kind"] == "Job" and o["metadata"]["labels"].get("hearth-llm.io/benchmark") == "smoke"
    ]
    web = next(p for p in cluster.pods["hearth-web"] if p.proc and p.proc.poll() is None)
    cluster.services[("hearth-web", 8080)] = web.port  # the Service, to one live replica
    pod = cluster.pod(job["metadata"]["name"])
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    run_id = args[args.index("--run-id") + 1]
    assert pod.args[pod.args.index("--url") + 1] == f"http://127.0.0.1:{web.port}/v1"

    pod.start()
    deadline = time.monotonic() + 120
    while True:  # until the first records are saved: the run is under way
        assert pod.proc is not None and pod.proc.poll() is None, pod.tail()
        shown = _show(pod, run_id)
        if shown and any(s.get("recorded") for s in shown["stages"]):
            break
        assert time.monotonic() < deadline, pod.tail()
        time.sleep(0.5)
    pod.kill(signal.SIGTERM)
    assert pod.proc.wait(timeout=60) == 75, pod.tail()
    stopped = _show(pod, run_id)
    assert stopped is not None and stopped["status"] == "interrupted"

    run(pod, timeout=180)  # the Job's next pod: the same command resumes the run
    finished = _show(pod, run_id)
    assert finished is not None
    assert (finished["status"], finished["attempts"], finished["name"]) == ("finished", 2, "smoke")
    assert finished["stages"][0]["summary"]["counted"] > 0
    run(pod, timeout=60)  # a pod started after the end: exits 0 at once, the run untouched
    assert _show(pod, run_id)["attempts"] == 2


def test_killing_a_web_replica_mid_stream(cluster: Cluster, ingress: str, key: str) -> None:
    auth = {"authorization": f"Bearer {key}"}
    http = httpx.Client(base_url=ingress, headers=auth, timeout=httpx.Timeout(120, connect=5))
    chats = [http.post("/api/chats", json={}).raise_for_status().json()["id"] for _ in range(10)]
    outcomes: dict[str, str] = {}
    received: dict[str, str] = {chat: "" for chat in chats}
    first_delta = threading.Event()

    def stream(chat: str) -> None:
        try:
            with http.stream(
                "POST", f"/api/chats/{chat}/messages", json={"content": f"Greet {chat[:4]}."}
            ) as answer:
                if answer.status_code != 200:
                    outcomes[chat] = f"status {answer.status_code}"
                    return
                last = "none"
                for line in answer.iter_lines():
                    if line.startswith("event: "):
                        last = line.removeprefix("event: ")
                        if last == "delta":
                            first_delta.set()
                    elif line.startswith("data: ") and last == "delta":
                        received[chat] += json.loads(line.removeprefix("data: "))["text"]
                outcomes[chat] = last  # "done" when it finished, "error" when it failed
        except httpx.HTTPError as exc:
            outcomes[chat] = f"broken: {type(exc).__name__}"

    threads = [threading.Thread(target=stream, args=(chat,)) for chat in chats]
    for thread in threads:
        thread.start()
    assert first_delta.wait(120), "no stream started"
    victim, survivor = cluster.pods["hearth-web"]
    victim.kill(signal.SIGKILL)
    deadline = time.monotonic() + 180  # bounded: a hung client fails here, not at CI's limit
    for thread in threads:
        thread.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"streams hung: {outcomes}"

    finished = [c for c, outcome in outcomes.items() if outcome == "done"]
    cut = [c for c in chats if c not in finished]
    assert len(outcomes) == 10
    assert finished, f"the surviving replica's streams should finish: {outcomes}"
    assert cut, f"the killed replica served none of the ten: {outcomes}"
    survivor.wait_ready()
    # Nothing stored is lost: every question reached the database before its answer
    # started (on either replica), and every finished answer is stored whole.
    for chat in chats:
        stored = http.get(f"/api/chats/{chat}/messages").json()["items"]
        assert stored and stored[0]["role"] == "user", f"chat {chat}: {stored}"
        if chat in finished:
            assert [m["role"] for m in stored] == ["user", "assistant"]
            assert stored[1]["status"] == "complete"
    # An answer the killed replica was writing keeps the text saved so far, marked
    # interrupted once its row has gone stale (STALE_STREAM_SECONDS), not lost.
    started = [c for c in cut if received[c] and outcomes[c].startswith("broken")]
    deadline = time.monotonic() + STALE_STREAM_SECONDS + 10
    for chat in started:
        while True:
            stored = http.get(f"/api/chats/{chat}/messages").json()["items"]
            answer = stored[-1]
            if answer["role"] == "assistant" and answer["status"] == "interrupted":
                break
            assert time.monotonic() < deadline, f"chat {chat}: {stored}"
            time.sleep(0.5)
        assert received[chat].startswith(answer["content"])
    http.close()
    report = {"outcomes": outcomes, "interrupted_with_text": len(started)}
    Path(cluster.root / "kill.json").write_text(json.dumps(report, indent=2))
