"""Images in chats: uploaded, checked by their bytes, sent to a model that reads images as
OpenAI content parts (the fake upstream decodes them and keeps what it got), kept in the
history of later turns, read back only by the chat's owner and a live link's readers,
exported and imported; and refused, with the model named, before anything is stored or
sent, by a model that does not read images (the real SmolLM2 among them) on every surface."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hearth.server import create_app
from tests._accounts import create_user, signed_in
from tests._server import Running, running
from tests.chat._images import BLIND, MAX_IMAGE_BYTES, UNKNOWN, VISION, gif, png, vision_settings
from tests.chat.test_chats import events
from tests.fakes.openai_upstream import FakeOpenAIUpstream

SMOLLM2 = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def shared_upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream(chunk_count=3, chunk_delay=0) as fake:
        yield fake


@pytest.fixture
def upstream(shared_upstream: FakeOpenAIUpstream) -> FakeOpenAIUpstream:
    shared_upstream.reset()
    return shared_upstream


@pytest.fixture(scope="module")
def site(postgres, tmp_path_factory, shared_upstream) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    settings = vision_settings(
        postgres.new_database(), tmp_path_factory.mktemp("images"), shared_upstream.base_url
    )
    with running(create_app(settings)) as server:
        yield server


@pytest.fixture
def alice(site: Running) -> httpx.Client:
    return signed_in(site, create_user(site))


@pytest.fixture
def bob(site: Running) -> httpx.Client:
    return signed_in(site, create_user(site))


def upload(
    client: httpx.Client, chat_id: str, data: bytes, name: str = "a.png", kind: str = "image/png"
) -> httpx.Response:
    return client.post(f"/api/chats/{chat_id}/images", files={"file": (name, data, kind)})


def send(client: httpx.Client, chat_id: str, content: str, images: list[str] | None = None):  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {"content": content, "images": images or []}
    with client.stream("POST", f"/api/chats/{chat_id}/messages", json=body) as reply:
        assert reply.status_code == 200, reply.read()
        return events(reply)


def new_chat(client: httpx.Client, model: str = VISION) -> str:
    return client.post("/api/chats", json={"model": model}).json()["id"]


def sent_parts(upstream: FakeOpenAIUpstream) -> list[Any]:
    """The content of each message of the last answer's request (title requests aside)."""
    answers = [
        r
        for r in upstream.requests
        if r.path == "/v1/chat/completions" and r.json.get("stream") is True
    ]
    return [m["content"] for m in answers[-1].json["messages"]]


def test_the_models_say_which_read_images(site: Running, hearth: Running) -> None:
    listed = signed_in(site, create_user(site)).get("/api/chats/models").json()
    assert {m["name"]: m["vision"] for m in listed} == {VISION: True, UNKNOWN: False, BLIND: False}
    assert [m["name"] for m in listed if m["default"]] == [VISION]
    local = signed_in(hearth, create_user(hearth)).get("/api/chats/models").json()
    assert {m["name"]: m["vision"] for m in local} == {SMOLLM2: False}


def test_an_image_goes_to_the_model_and_stays_in_the_history(
    alice: httpx.Client, upstream: FakeOpenAIUpstream
) -> None:
    chat = new_chat(alice)
    picture = png(6, 4, (10, 200, 30))
    uploaded = upload(alice, chat, picture)
    assert uploaded.status_code == 201, uploaded.text
    image = uploaded.json()
    assert (image["content_type"], image["size"]) == ("image/png", len(picture))

    got = send(alice, chat, "What colour is this?", [image["id"]])
    assert got[0][0] == "question" and got[-1][0] == "done"
    assert [i["id"] for i in got[0][1]["message"]["images"]] == [image["id"]]
    # The engine got a text part and the image as a data URL whose base64 is its bytes.
    assert upstream.images == [("image/png", picture)]
    question = sent_parts(upstream)[-1]
    assert question[0] == {"type": "text", "text": "What colour is this?"}
    assert question[1]["type"] == "image_url"
    assert question[1]["image_url"]["url"].startswith("data:image/png;base64,")

    # Stored with its message, and served to its owner as what it is.
    stored = alice.get(f"/api/chats/{chat}/messages").json()["items"]
    assert [[i["id"] for i in m["images"]] for m in stored] == [[image["id"]], []]
    served = alice.get(f"/api/chats/{chat}/images/{image['id']}")
    assert served.status_code == 200 and served.content == picture
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"

    # An edit keeps the message's images, and takes none of its own.
    question_id = stored[0]["id"]
    more = alice.put(
        f"/api/chats/{chat}/messages/{question_id}",
        json={"content": "Which colour?", "images": [image["id"]]},
    )
    assert more.status_code == 400 and more.json()["error"]["param"] == "images"
    edit = {"content": "Which colour?"}
    with alice.stream("PUT", f"/api/chats/{chat}/messages/{question_id}", json=edit) as reply:
        assert events(reply)[-1][0] == "done"
    edited = alice.get(f"/api/chats/{chat}/messages").json()["items"][0]
    assert edited["content"] == "Which colour?"
    # The edit is a new version beside the old one (a branch): it has a copy of the image,
    # and the old version keeps its own.
    assert edited["id"] != question_id and edited["siblings"] == 2
    assert [i["content_type"] for i in edited["images"]] == ["image/png"]
    copy = edited["images"][0]["id"]
    assert copy != image["id"]
    assert alice.get(f"/api/chats/{chat}/images/{copy}").content == picture
    assert alice.get(f"/api/chats/{chat}/images/{image['id']}").content == picture

    # The next turn's history carries the earlier image again.
    upstream.images.clear()
    send(alice, chat, "And now?")
    assert upstream.images == [("image/png", picture)]
    parts = sent_parts(upstream)
    assert isinstance(parts[0], list) and parts[-1] == "And now?"


def test_the_type_is_told_by_the_bytes(alice: httpx.Client, upstream: FakeOpenAIUpstream) -> None:
    chat = new_chat(alice)
    # A PNG declared a GIF is a PNG; a GIF is a GIF.
    assert upload(alice, chat, png(), "x.gif", "image/gif").json()["content_type"] == "image/png"
    assert upload(alice, chat, gif(), "x.png", "image/png").json()["content_type"] == "image/gif"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    for data, name, kind in (
        (svg, "x.svg", "image/svg+xml"),
        (b"plain text, said to be a PNG", "x.png", "image/png"),
        (b"%PDF-1.7", "x.jpg", "image/jpeg"),
    ):
        refused = upload(alice, chat, data, name, kind)
        assert refused.status_code == 400, refused.text
        assert "not a PNG, JPEG, WebP or GIF image" in refused.json()["error"]["message"]


def test_too_large_or_too_many_is_refused_by_name(alice: httpx.Client) -> None:
    chat = new_chat(alice)
    just_over = png() + b"\0" * (MAX_IMAGE_BYTES + 1 - len(png()))
    refused = upload(alice, chat, just_over)
    assert refused.status_code == 400
    message = refused.json()["error"]["message"]
    assert f"{MAX_IMAGE_BYTES + 1:,} bytes" in message and "chat_image_max_bytes" in message
    assert upload(alice, chat, png() + b"\0" * (4 * MAX_IMAGE_BYTES)).status_code == 413

    ids = [upload(alice, chat, png(2 + n)).json()["id"] for n in range(5)]
    too_many = alice.post(f"/api/chats/{chat}/messages", json={"content": "hi", "images": ids})
    assert too_many.status_code == 400 and "images" in too_many.text
    # An id that is not waiting in this chat: 400, and the message is not stored.
    other = new_chat(alice)
    foreign = upload(alice, other, png()).json()["id"]
    wrong = alice.post(f"/api/chats/{chat}/messages", json={"content": "hi", "images": [foreign]})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "images[0]"
    assert alice.get(f"/api/chats/{chat}/messages").json()["items"] == []
    # Removed before sending: gone.
    assert alice.delete(f"/api/chats/{chat}/images/{ids[0]}").status_code == 204
    assert alice.get(f"/api/chats/{chat}/images/{ids[0]}").status_code == 404


def test_nobody_else_reads_or_attaches_an_image(
    alice: httpx.Client, bob: httpx.Client, upstream: FakeOpenAIUpstream
) -> None:
    chat = new_chat(alice)
    image = upload(alice, chat, png()).json()["id"]
    send(alice, chat, "Look.", [image])
    assert bob.get(f"/api/chats/{chat}/images/{image}").status_code == 404
    assert upload(bob, chat, png()).status_code == 404
    assert bob.delete(f"/api/chats/{chat}/images/{image}").status_code == 404
    # Bob's own chat cannot take Alice's image (nor its id through another chat's path).
    own = new_chat(bob)
    assert bob.get(f"/api/chats/{own}/images/{image}").status_code == 404
    stolen = bob.post(f"/api/chats/{own}/messages", json={"content": "hi", "images": [image]})
    assert stolen.status_code == 400
    assert upstream.images == [("image/png", png())]  # only Alice's own message sent it


def test_a_links_readers_see_its_images_until_it_is_revoked(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    chat = new_chat(alice)
    first = upload(alice, chat, png(3)).json()["id"]
    send(alice, chat, "One.", [first])
    token = alice.post(f"/api/chats/{chat}/share").json()["token"]
    later = upload(alice, chat, png(5)).json()["id"]
    send(alice, chat, "Two.", [later])  # after the link's cutoff

    shown = bob.get(f"/api/shared/{token}").json()["messages"]
    assert [[i["id"] for i in m["images"]] for m in shown] == [[first], []]
    image = bob.get(f"/api/shared/{token}/images/{first}")
    assert image.status_code == 200 and image.content == png(3)
    assert image.headers["x-content-type-options"] == "nosniff"
    assert bob.get(f"/api/shared/{token}/images/{later}").status_code == 404
    page = bob.get(f"/s/{token}")
    assert f'src="/api/shared/{token}/images/{first}"' in page.text
    alice.delete(f"/api/chats/{chat}/share")
    assert bob.get(f"/api/shared/{token}/images/{first}").status_code == 404


def test_a_model_that_does_not_read_images_refuses_them(
    alice: httpx.Client, upstream: FakeOpenAIUpstream
) -> None:
    for model, why in ((UNKNOWN, "neither its configuration"), (BLIND, "vision = false")):
        chat = new_chat(alice, model)
        refused = upload(alice, chat, png())
        assert refused.status_code == 400
        assert f"'{model}' cannot read images" in refused.json()["error"]["message"]
        assert why in refused.json()["error"]["message"]
        named = alice.post(
            f"/api/chats/{chat}/messages", json={"content": "hi", "images": [str(uuid.uuid4())]}
        )
        assert named.status_code == 400 and f"'{model}'" in named.json()["error"]["message"]
        assert alice.get(f"/api/chats/{chat}/messages").json()["items"] == []
    assert upstream.chats == 0  # nothing was sent


def test_switching_to_a_model_without_images_says_they_were_left_out(
    alice: httpx.Client, upstream: FakeOpenAIUpstream
) -> None:
    chat = new_chat(alice)
    send(alice, chat, "See.", [upload(alice, chat, png()).json()["id"]])
    alice.patch(f"/api/chats/{chat}", json={"model": UNKNOWN})
    upstream.images.clear()
    got = send(alice, chat, "Go on.")
    assert got[0][1]["context"] == {"images": 1}
    assert upstream.images == [] and all(isinstance(c, str) for c in sent_parts(upstream))


def test_smollm2_refuses_images_on_every_surface(hearth: Running) -> None:
    client = signed_in(hearth, create_user(hearth))
    chat = client.post("/api/chats", json={}).json()
    refused = upload(client, chat["id"], png())
    assert refused.status_code == 400
    assert f"'{SMOLLM2}' cannot read images" in refused.json()["error"]["message"]
    named = client.post(
        f"/api/chats/{chat['id']}/messages",
        json={"content": "hi", "images": [str(uuid.uuid4())]},
    )
    assert named.status_code == 400 and SMOLLM2 in named.json()["error"]["message"]
    assert client.get(f"/api/chats/{chat['id']}/messages").json()["items"] == []

    url = "data:image/png;base64," + base64.b64encode(png()).decode()
    parts = [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    v1 = httpx.post(
        f"{hearth.url}/v1/chat/completions",
        json={"model": SMOLLM2, "max_tokens": 4, "messages": [{"role": "user", "content": parts}]},
    )
    assert v1.status_code == 400, v1.text
    error = v1.json()["error"]
    assert f"'{SMOLLM2}' cannot read images" in error["message"]
    assert error["param"] == "messages[0].content[1]"
    ollama = httpx.post(
        f"{hearth.url}/api/chat",
        json={
            "model": SMOLLM2,
            "stream": False,
            "messages": [
                {"role": "user", "content": "hi", "images": [base64.b64encode(png()).decode()]}
            ],
        },
    )
    assert ollama.status_code == 400 and SMOLLM2 in ollama.json()["error"]


def test_v1_passes_images_to_a_model_that_may_read_them(
    site: Running, upstream: FakeOpenAIUpstream
) -> None:
    url = "data:image/gif;base64," + base64.b64encode(gif()).decode()
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
    for model in (VISION, UNKNOWN):  # unknown: its engine answers for itself, as before
        reply = httpx.post(
            f"{site.url}/v1/chat/completions", json={"model": model, "messages": [message]}
        )
        assert reply.status_code == 200, reply.text
    assert upstream.images == [("image/gif", gif())] * 2
    blind = httpx.post(
        f"{site.url}/v1/chat/completions", json={"model": BLIND, "messages": [message]}
    )
    assert blind.status_code == 400 and f"'{BLIND}'" in blind.json()["error"]["message"]


def test_export_and_import_keep_the_images(alice: httpx.Client) -> None:
    chat = new_chat(alice)
    pictures = [png(4, 4, (1, 2, 3)), gif()]
    ids = [upload(alice, chat, p).json()["id"] for p in pictures]
    send(alice, chat, "Two pictures.", ids)
    markdown = alice.get(f"/api/chats/{chat}/export", params={"format": "md"}).text
    assert "_(2 images: in the JSON export)_" in markdown
    exported = alice.get(f"/api/chats/{chat}/export").json()
    first = exported["messages"][0]
    assert [i["content_type"] for i in first["images"]] == ["image/png", "image/gif"]
    assert [base64.b64decode(i["data"]) for i in first["images"]] == pictures

    imported = alice.post("/api/chats/import", content=json.dumps(exported))
    assert imported.status_code == 201, imported.text
    copy = imported.json()["id"]
    images = alice.get(f"/api/chats/{copy}/messages").json()["items"][0]["images"]
    assert [alice.get(f"/api/chats/{copy}/images/{i['id']}").content for i in images] == pictures

    # An image that is not one, in an export: 400 naming it, nothing imported.
    before = len(alice.get("/api/chats").json()["items"])
    first["images"][1]["data"] = base64.b64encode(b"<svg/>").decode()
    bad = alice.post("/api/chats/import", content=json.dumps(exported))
    assert bad.status_code == 400 and "messages[0].images[1]" in bad.json()["error"]["message"]
    first["images"] = [{"content_type": "image/png", "data": "not base64!"}]
    assert alice.post("/api/chats/import", content=json.dumps(exported)).status_code == 400
    assert len(alice.get("/api/chats").json()["items"]) == before


def test_open_webuis_images_are_imported_and_the_rest_named(alice: httpx.Client) -> None:
    picture = png(5, 5, (9, 9, 9))
    data_url = "data:image/png;base64," + base64.b64encode(picture).decode()
    export = [
        {
            "title": "Photos",
            "chat": {
                "models": [VISION],
                "history": {
                    "currentId": "a",
                    "messages": {
                        "q": {
                            "id": "q",
                            "parentId": None,
                            "role": "user",
                            "content": "What is this?",
                            "files": [
                                {"type": "image", "url": data_url},
                                {"type": "image", "url": "/api/v1/files/abc/content"},
                                {"type": "file", "name": "notes.txt", "id": "f1"},
                            ],
                        },
                        "a": {
                            "id": "a",
                            "parentId": "q",
                            "role": "assistant",
                            "content": "A grey square.",
                            "files": [{"type": "image", "url": data_url}],
                        },
                    },
                },
            },
        }
    ]
    report = alice.post("/api/chats/import", content=json.dumps(export)).json()
    chat = report["chats"][0]
    assert chat["id"] is not None, report
    assert chat["not_imported"] == [
        "images not in the file (links to Open WebUI's file store) of 1 message",
        "attached files of 1 message",
        "images in answers of 1 message",
    ]
    question = alice.get(f"/api/chats/{chat['id']}/messages").json()["items"][0]
    assert len(question["images"]) == 1
    served = alice.get(f"/api/chats/{chat['id']}/images/{question['images'][0]['id']}")
    assert served.content == picture


def edit(client: httpx.Client, chat_id: str, message_id: int, content: str) -> None:
    body = {"content": content}
    with client.stream("PUT", f"/api/chats/{chat_id}/messages/{message_id}", json=body) as reply:
        assert events(reply)[-1][0] == "done"


def test_a_link_shows_only_the_images_of_its_branch(alice: httpx.Client, bob: httpx.Client) -> None:
    chat = new_chat(alice)
    first = upload(alice, chat, png(3)).json()["id"]
    send(alice, chat, "One.", [first])
    original = alice.get(f"/api/chats/{chat}/messages").json()["items"][0]["id"]
    edit(alice, chat, original, "One, again.")  # a new version, with a copy of the image
    copy = alice.get(f"/api/chats/{chat}/messages").json()["items"][0]["images"][0]["id"]
    later = upload(alice, chat, png(5)).json()["id"]
    send(alice, chat, "Two.", [later])
    # Back to the first version, and shared from there: the other branch stays private.
    alice.post(f"/api/chats/{chat}/messages/{original}/select")
    token = alice.post(f"/api/chats/{chat}/share").json()["token"]
    shown = bob.get(f"/api/shared/{token}").json()["messages"]
    assert [[i["id"] for i in m["images"]] for m in shown] == [[first], []]
    assert bob.get(f"/api/shared/{token}/images/{first}").status_code == 200
    assert bob.get(f"/api/shared/{token}/images/{copy}").status_code == 404
    assert bob.get(f"/api/shared/{token}/images/{later}").status_code == 404


def test_export_and_import_keep_the_images_of_every_branch(alice: httpx.Client) -> None:
    chat = new_chat(alice)
    picture, other = png(4, 4, (1, 2, 3)), gif()
    send(alice, chat, "First.", [upload(alice, chat, picture).json()["id"]])
    question = alice.get(f"/api/chats/{chat}/messages").json()["items"][0]["id"]
    edit(alice, chat, question, "First, edited.")
    send(alice, chat, "Second.", [upload(alice, chat, other).json()["id"]])
    exported = alice.get(f"/api/chats/{chat}/export").json()
    shape = [(m["parent"], m["content"], len(m["images"])) for m in exported["messages"]]
    assert shape[0] == (None, "First.", 1) and shape[2] == (None, "First, edited.", 1)
    assert shape[4] == (4, "Second.", 1) and exported["current"] == 6

    imported = alice.post("/api/chats/import", content=json.dumps(exported))
    assert imported.status_code == 201, imported.text
    copy = imported.json()["id"]
    path = alice.get(f"/api/chats/{copy}/messages").json()["items"]
    assert [m["content"] for m in path if m["role"] == "user"] == ["First, edited.", "Second."]

    def served(message: dict[str, Any]) -> list[bytes]:
        return [alice.get(f"/api/chats/{copy}/images/{i['id']}").content for i in message["images"]]

    assert served(path[0]) == [picture] and served(path[2]) == [other]
    older = alice.post(f"/api/chats/{copy}/messages/{path[0]['previous_sibling']}/select")
    assert served(older.json()["items"][0]) == [picture]


def test_open_webuis_branches_keep_their_images(alice: httpx.Client) -> None:
    def url(data: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(data).decode()

    one, two = png(2, 2, (1, 1, 1)), png(3, 3, (2, 2, 2))
    messages = {
        "q1": {"parentId": None, "childrenIds": [], "role": "user", "content": "A?"},
        "q2": {"parentId": None, "childrenIds": ["a2"], "role": "user", "content": "B?"},
        "a2": {"parentId": "q2", "childrenIds": [], "role": "assistant", "content": "B."},
    }
    messages["q1"]["files"] = [{"type": "image", "url": url(one)}]
    messages["q2"]["files"] = [{"type": "image", "url": url(two)}]
    export = [
        {
            "title": "Two versions",
            "chat": {
                "models": [VISION],
                "history": {
                    "currentId": "a2",
                    "messages": {k: {"id": k, **v} for k, v in messages.items()},
                },
            },
        }
    ]
    report = alice.post("/api/chats/import", content=json.dumps(export)).json()
    chat = report["chats"][0]["id"]
    assert chat is not None, report
    path = alice.get(f"/api/chats/{chat}/messages").json()["items"]
    assert [m["content"] for m in path] == ["B?", "B."] and path[0]["siblings"] == 2
    image = path[0]["images"][0]["id"]
    assert alice.get(f"/api/chats/{chat}/images/{image}").content == two
    other = alice.post(f"/api/chats/{chat}/messages/{path[0]['previous_sibling']}/select")
    first = other.json()["items"][0]
    assert first["content"] == "A?"
    assert alice.get(f"/api/chats/{chat}/images/{first['images'][0]['id']}").content == one
