"""Bad input is a 400 in the surface's error shape, never a 500: each cause the fuzzer found
(tests/http/test_fuzz.py finds the unknown ones), asserted against a running Hearth.

- text PostgreSQL cannot hold (NUL, a lone surrogate) in a JSON body, a form, a query
  string or a path, refused before any route runs (hearth.http.text_guard);
- numbers past their column (an id past bigint, a limit past integer, a negative offset);
- an explicit null in a partial update where nothing can be empty;
- strings longer than their column (an import's model, an upload's Content-Type).
"""

from __future__ import annotations

import json

import httpx
import pytest

from hearth.fields import INT32_MAX, INT64_MAX
from hearth.http.text_guard import json_text_problem
from tests._accounts import admin_headers, create_user, signed_in, user_headers
from tests._server import Running


@pytest.fixture(scope="module")
def api(hearth: Running) -> httpx.Client:
    with httpx.Client(base_url=hearth.url, headers=user_headers(hearth), timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def admin(hearth: Running) -> httpx.Client:
    with httpx.Client(base_url=hearth.url, headers=admin_headers(hearth), timeout=60) as client:
        yield client


def raw_json(client: httpx.Client, method: str, path: str, body: str) -> httpx.Response:
    """Send `body` as it is: json.dumps would escape what the test means to send."""
    headers = {"content-type": "application/json"}
    return client.request(method, path, content=body.encode(), headers=headers)


def refused(response: httpx.Response, *words: str) -> str:
    """The OpenAI-shaped 400's message, after checking the shape."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    for word in words:
        assert word in error["message"], error
    return error["message"]


def test_nul_and_lone_surrogates_are_refused_in_json_bodies(api: httpx.Client) -> None:
    before = api.get("/api/chats?limit=200").json()["items"]
    refused(raw_json(api, "POST", "/api/chats", '{"title": "a\\u0000b"}'), "NUL")
    refused(raw_json(api, "POST", "/api/chats", '{"title": "a\\ud800b"}'), "surrogate")
    refused(raw_json(api, "POST", "/api/chats", '{"title": "\\udc00"}'), "surrogate")
    assert api.get("/api/chats?limit=200").json()["items"] == before  # nothing half-made

    # What looks alike but is fine: an escaped backslash before "u0000" (the text \u0000,
    # as in code), and a surrogate pair (one emoji).
    literal = raw_json(api, "POST", "/api/chats", '{"title": "a\\\\u0000b"}')
    assert literal.status_code == 201 and literal.json()["title"] == "a\\u0000b"
    emoji = raw_json(api, "POST", "/api/chats", '{"title": "\\ud83d\\ude00"}')
    assert emoji.status_code == 201 and emoji.json()["title"] == "\N{GRINNING FACE}"

    chat = literal.json()["id"]
    message = raw_json(api, "POST", f"/api/chats/{chat}/messages", '{"content": "hi\\u0000"}')
    refused(message, "NUL")
    assert api.get(f"/api/chats/{chat}/messages").json()["items"] == []


def test_the_scanner_tells_escapes_from_text() -> None:
    assert json_text_problem(b'{"a": "plain"}') is None
    assert json_text_problem(b'{"a": "\\u0041\\u00e9"}') is None
    assert json_text_problem(b'{"a": "\\\\\\u0000"}') is not None  # \\ then \u0000
    assert json_text_problem(b'{"a": "\\\\\\\\u0000"}') is None  # \\ \\ then u0000
    assert json_text_problem(b'{"a": "\\uD83D\\uDE00"}') is None
    assert json_text_problem(b'{"a": "\\uD83D\\u0041"}') is not None


def test_nul_is_refused_in_queries_paths_and_forms(hearth: Running, api: httpx.Client) -> None:
    refused(api.get("/api/chats", params={"q": "a\x00"}), "NUL")
    refused(api.delete("/api/keys/a%00b"), "NUL")
    # The Ollama surface answers in its own shape.
    ollama = raw_json(
        api,
        "POST",
        "/api/chat",
        '{"model": "x", "messages": [{"role": "user", "content": "\\u0000"}]}',
    )
    assert ollama.status_code == 400 and "NUL" in ollama.json()["error"], ollama.text
    ollama_query = api.get("/api/tags", params={"x": "\x00"})
    assert ollama_query.status_code == 400 and "NUL" in ollama_query.json()["error"]
    # A web form (URL-encoded): the sign-in page.
    user = create_user(hearth)
    browser = signed_in(hearth, user)
    form = {"csrf_token": browser.headers["x-csrf-token"], "name": "Notes\x00"}
    assert browser.post("/collections", data=form).status_code == 400


def test_numbers_past_their_column_are_refused(admin: httpx.Client, api: httpx.Client) -> None:
    refused(admin.get("/api/admin/users", params={"offset": -1}), "offset")
    refused(admin.get("/api/admin/users", params={"limit": 0}), "limit")
    assert admin.get("/api/admin/users", params={"offset": INT64_MAX}).json() == []

    too_many = {"name": "k", "requests_per_minute": INT32_MAX + 1}
    refused(api.post("/api/keys", json=too_many), "requests_per_minute")
    most = api.post("/api/keys", json={"name": "k", "requests_per_minute": INT32_MAX})
    assert most.status_code == 201, most.text

    group = admin.post("/api/admin/groups", json={"name": "fuzzed-limits"}).json()["id"]
    limits = {"max_concurrent": INT32_MAX + 1}
    refused(admin.put(f"/api/admin/groups/{group}/limits", json=limits), "max_concurrent")

    chat = api.post("/api/chats", json={}).json()["id"]
    refused(api.post(f"/api/chats/{chat}/messages/{INT64_MAX + 1}/regenerate"), "message_id")
    refused(api.get(f"/api/chats/{chat}/messages", params={"before": -5}), "before")
    missing = api.put(f"/api/chats/{chat}/messages/{INT64_MAX}", json={"content": "x"})
    assert missing.status_code == 404, missing.text


def test_null_in_a_partial_update_is_refused_where_nothing_can_be_empty(
    admin: httpx.Client, api: httpx.Client
) -> None:
    chat = api.post("/api/chats", json={"title": "Kept"}).json()["id"]
    for field in ("model", "archived", "title", "collection_ids"):
        refused(api.patch(f"/api/chats/{chat}", json={field: None}), field, "null")
    assert api.get(f"/api/chats/{chat}").json()["title"] == "Kept"

    refused(admin.patch("/api/settings", json={"signup_mode": None}), "signup_mode")
    cleared = admin.patch("/api/settings", json={"default_model": None})
    assert cleared.status_code == 200 and cleared.json()["default_model"] is None

    someone = admin.post("/api/admin/users", json={"email": "nulls@example.org"}).json()
    refused(admin.patch(f"/api/admin/users/{someone['id']}", json={"role": None}), "role")


def test_strings_longer_than_their_column_are_refused(api: httpx.Client) -> None:
    exported = {"title": "t", "model": "m" * 201, "messages": []}
    refused(api.post("/api/chats/import", json=exported), "model")
    collection = api.post("/api/collections", json={"name": "Types"}).json()["id"]
    upload = api.post(
        f"/api/collections/{collection}/documents",
        files={"file": ("notes.txt", b"some text", "text/plain; x=" + "y" * 300)},
    )
    refused(upload, "Content-Type")
    named = api.post(
        f"/api/collections/{collection}/documents",
        files={"file": ("n" * 600 + ".txt", b"some text", "text/plain")},
    )
    refused(named, "file name")


def test_ollama_embed_of_nothing_is_no_vectors_and_bad_dimensions_a_400(
    api: httpx.Client,
) -> None:
    model = "all-minilm-l6-v2"
    for nothing in ("", []):
        answer = api.post("/api/embed", json={"model": model, "input": nothing})
        assert answer.status_code == 200, answer.text
        assert answer.json()["embeddings"] == []
    bad = api.post("/api/embed", json={"model": model, "input": "x", "dimensions": 0})
    assert bad.status_code == 400 and "dimensions" in bad.json()["error"], bad.text


def test_an_export_is_named_after_a_title_in_any_script(api: httpx.Client) -> None:
    chat = api.post("/api/chats", json={"title": "Отчёт 2026 東京"}).json()["id"]
    export = api.get(f"/api/chats/{chat}/export")
    assert export.status_code == 200, export.text
    disposition = export.headers["content-disposition"]
    assert 'filename="' in disposition and "filename*=UTF-8''" in disposition
    assert json.loads(export.text)["title"] == "Отчёт 2026 東京"
