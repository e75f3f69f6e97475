"""`/api/catalog` on a running Hearth (real PostgreSQL, the real local engines) with httpx:
seeded from what the gateway serves, a round trip for each kind, who may write, and bad
input refused in the one JSON error shape with nothing written."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests._accounts import admin_headers, create_user, signed_in, user_headers
from tests._server import Running

BASE = "/api/catalog"


@pytest.fixture(scope="module")
def admin(hearth: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hearth.url, headers=admin_headers(hearth), timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def user(hearth: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hearth.url, headers=user_headers(hearth), timeout=60) as client:
        yield client


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def error(response: httpx.Response, status: int, *words: str) -> dict:
    """The error's body, after checking its status and the project's JSON shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    for word in words:
        assert word in body["error"]["message"], body
    return body["error"]


def test_the_served_model_is_seeded_with_its_deployment(user: httpx.Client) -> None:
    models = {m["name"]: m for m in user.get(f"{BASE}/models").json()}
    smol = models["smollm2-135m-instruct"]
    assert (smol["family"], smol["parameters"], smol["quantization"]) == (
        "SmolLM2",
        135_000_000,
        "Q4_1",
    )
    assert "all-minilm-l6-v2" in models
    deployments = {d["name"]: d for d in user.get(f"{BASE}/deployments").json()}
    local = deployments["smollm2-135m-instruct@local"]
    assert (local["model_name"], local["source"], local["endpoint"]) == (
        "smollm2-135m-instruct",
        "gateway",
        "local",
    )
    assert local["hardware_name"].startswith("cpu-") and local["on_demand_per_hour"] == 0


def test_round_trip(admin: httpx.Client, user: httpx.Client) -> None:
    gpu = admin.post(
        f"{BASE}/hardware",
        json={
            "name": unique("1xL4"),
            "accelerator": "L4",
            "accelerator_count": 1,
            "on_demand_per_hour": 0.8,
            "spot_per_hour": 0.35,
        },
    )
    assert gpu.status_code == 201, gpu.text
    model = admin.post(
        f"{BASE}/models", json={"name": unique("qwen2.5-7b"), "parameters": 7_600_000_000}
    )
    assert model.status_code == 201, model.text
    made = admin.post(
        f"{BASE}/deployments",
        json={
            "name": unique("qwen-l4"),
            "model": model.json()["name"],
            "hardware": gpu.json()["id"],
            "engine": "vllm",
            "replicas": 2,
        },
    )
    assert made.status_code == 201, made.text
    deployment = made.json()
    assert (deployment["model_name"], deployment["hardware_name"]) == (
        model.json()["name"],
        gpu.json()["name"],
    )
    assert deployment["on_demand_per_hour"] == pytest.approx(1.6)
    assert deployment["spot_per_hour"] == pytest.approx(0.7)

    # Everyone signed in reads what the admin wrote; a price change reaches the deployment.
    path = f"{BASE}/deployments/{deployment['id']}"
    assert user.get(path).json() == deployment
    changed = admin.patch(f"{BASE}/hardware/{gpu.json()['id']}", json={"on_demand_per_hour": 1})
    assert changed.status_code == 200 and changed.json()["on_demand_per_hour"] == 1
    assert user.get(path).json()["on_demand_per_hour"] == pytest.approx(2.0)
    patched = admin.patch(path, json={"replicas": 3, "hardware": None})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["replicas"], patched.json()["hardware_id"]) == (3, None)
    assert any(d["id"] == deployment["id"] for d in user.get(f"{BASE}/deployments").json())

    # A model in use cannot go: the message names what uses it.
    model_path = f"{BASE}/models/{model.json()['id']}"
    error(admin.delete(model_path), 409, "is used by the deployment", deployment["name"])
    assert admin.delete(path).status_code == 204
    assert admin.delete(model_path).status_code == 204
    assert admin.delete(f"{BASE}/hardware/{gpu.json()['id']}").status_code == 204
    error(user.get(model_path), 404, "no model")
    error(admin.delete(path), 404, "no deployment")


def test_only_admins_write(hearth: Running, user: httpx.Client) -> None:
    body = {"name": unique("nope"), "on_demand_per_hour": 1}
    error(user.post(f"{BASE}/hardware", json=body), 403, "administrators")
    some = user.get(f"{BASE}/models").json()[0]
    error(user.patch(f"{BASE}/models/{some['id']}", json={"notes": "mine"}), 403)
    error(user.delete(f"{BASE}/models/{some['id']}"), 403)
    anonymous = httpx.Client(base_url=hearth.url, timeout=60)
    with anonymous:
        error(anonymous.get(f"{BASE}/models"), 401)
        error(anonymous.post(f"{BASE}/hardware", json=body), 401)
    # A signed-in browser reads; an admin's session writes with its CSRF token only.
    person = signed_in(hearth, create_user(hearth))
    assert person.get(f"{BASE}/hardware").status_code == 200
    error(person.post(f"{BASE}/hardware", json=body), 403)
    boss = signed_in(hearth, create_user(hearth, admin=True))
    forged = httpx.Client(base_url=hearth.url, cookies=boss.cookies, timeout=60)
    with forged:
        error(forged.post(f"{BASE}/hardware", json=body), 403, "CSRF")
    assert boss.post(f"{BASE}/hardware", json=body).status_code == 201
    names = [h["name"] for h in user.get(f"{BASE}/hardware").json()]
    assert names.count(body["name"]) == 1


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("hardware", {"name": "x", "on_demand_per_hour": -1}, ["on_demand_per_hour"]),
        ("hardware", {"name": "x", "spot_per_hour": "cheap"}, ["spot_per_hour"]),
        ("hardware", {"name": "x", "accelerator_count": -2}, ["accelerator_count"]),
        ("hardware", {"name": "x", "gpus": 8}, ["gpus", "Extra inputs"]),
        ("models", {"name": ""}, ["name"]),
        ("models", {"name": "has spaces"}, ["name"]),
        ("models", {"name": "x", "parameters": 2**63}, ["parameters"]),
        ("models", {"name": "x", "family": None}, ["family"]),
        ("deployments", {"name": "x", "model": "m", "engine": "vllm", "replicas": 0}, ["replicas"]),
        ("deployments", {"name": "x", "model": "m"}, ["engine"]),
        ("deployments", {"name": "x", "model": "no-such-model", "engine": "vllm"}, ["no model"]),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    admin: httpx.Client, path: str, body: dict, words: list[str]
) -> None:
    before = admin.get(f"{BASE}/{path}").json()
    error(admin.post(f"{BASE}/{path}", json=body), 400, *words)
    assert admin.get(f"{BASE}/{path}").json() == before


def test_bad_patches_and_names_taken(admin: httpx.Client) -> None:
    name = unique("mistral")
    made = admin.post(f"{BASE}/models", json={"name": name, "context_length": 32768}).json()
    path = f"{BASE}/models/{made['id']}"
    error(admin.patch(path, json={"name": None}), 400, "cannot be null")
    error(admin.patch(path, json={"context_length": 0}), 400, "context_length")
    error(admin.patch(path, json={"size": "7b"}), 400, "size")
    error(admin.post(f"{BASE}/models", json={"name": name}), 409, "exists")
    other = admin.post(f"{BASE}/models", json={"name": unique("other")}).json()
    error(admin.patch(f"{BASE}/models/{other['id']}", json={"name": name}), 409, "exists")
    error(admin.get(f"{BASE}/models/not-an-id"), 400)
    assert admin.get(path).json() == made  # nothing half-changed
    cleared = admin.patch(path, json={"context_length": None, "notes": "long context"}).json()
    assert (cleared["context_length"], cleared["notes"]) == (None, "long context")
    for row in (made, other):
        assert admin.delete(f"{BASE}/models/{row['id']}").status_code == 204
