"""Sharing and importing chats in a real browser (Debian's chromium, Playwright) on a fresh
Hearth: Ada shares a chat from its Share menu, Bob opens the link signed out, signs in,
comes back to it and reads it read-only on a phone and on a desktop, until Ada revokes
it; Open WebUI's export goes in through the chat list's Import, each chat with its result.
Its own people (no order to depend on with tests/web/test_app.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from hearth.accounts.users import UserCreate
from hearth.config import Settings
from hearth.server import create_app
from tests._server import Running, running
from tests.web._pages import assert_fits, open_page, ready

PASSWORD = "a long enough password"
ADA, BOB = "ada@example.org", "bob@example.org"
EXPORT = Path(__file__).parents[1] / "chat" / "openwebui_export.json"
WIDE = (
    "Reset it like this:\n\n```\n" + "echo '" + "r" * 200 + "'\n```\n\n"
    "| " + " | ".join(f"step {i}" for i in range(10)) + " |\n"
    "|" + "---|" * 10 + "\n| " + " | ".join("x" * 10 for _ in range(10)) + " |\n\n"
    "Hold the red button [1]."
)
CHAT = {
    "title": "Boiler reset, the long way round, with every step written out in full",
    "model": "smollm2-135m-instruct",
    "messages": [
        {"role": "user", "content": "How do I reset the boiler?"},
        {
            "role": "assistant",
            "content": WIDE,
            "citations": [
                {
                    "document_id": "00000000-0000-4000-8000-000000000001",
                    "chunk_id": 1,
                    "filename": "boiler.pdf",
                    "title": "Boiler manual",
                    "page": 1,
                    "text": "Hold the red button for ten seconds.",
                }
            ],
        },
    ],
}


@pytest.fixture(scope="module")
def site(postgres, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=postgres.new_database(), data_dir=tmp_path_factory.mktemp("shared")
    )
    with running(create_app(settings)) as server:
        for name, email in (("Ada", ADA), ("Bob", BOB)):
            body = UserCreate(email=email, name=name, password=PASSWORD)
            server.call(server.app.state.users.create(body, status="active"))
        yield server


def sign_in(page: Page, email: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_a_shared_chat_opens_read_only_for_another_person(
    site: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    ada = open_page(browser, contexts, site.url + "/login")
    sign_in(ada, ADA)
    ready(ada)
    csrf = ada.locator("meta[name=csrf-token]").get_attribute("content")
    made = ada.request.post(
        site.url + "/api/chats/import", data=CHAT, headers={"x-csrf-token": csrf or ""}
    )
    assert made.ok, made.text()
    ada.goto(f"{site.url}/c/{made.json()['id']}")
    ready(ada)

    # Ada makes the link from the chat's Share menu.
    ada.get_by_text("Share", exact=True).click()
    state = ada.locator("#share-state")
    expect(state).to_contain_text("anyone signed in to this site")
    ada.get_by_role("button", name="Create link").click()
    link = ada.get_by_label("Link to this chat")
    expect(link).to_have_value(re.compile(rf"^{re.escape(site.url)}/s/[A-Za-z0-9_-]{{43}}$"))
    expect(state).to_contain_text("first 2 messages")
    url = link.input_value()
    for width in (320, 390):
        ada.set_viewport_size({"width": width, "height": 800})
        assert_fits(ada, "the chat with its Share menu open")
    ada.set_viewport_size({"width": 1280, "height": 800})

    # Bob, signed out on a phone: sent to sign in, and back to the link.
    bob = open_page(browser, contexts, url, viewport={"width": 320, "height": 700})
    expect(bob).to_have_url(re.compile(r"/login\?next=/s/"))
    sign_in(bob, BOB)
    expect(bob).to_have_url(url)
    expect(bob.get_by_role("heading", level=1)).to_have_text(CHAT["title"])
    conversation = bob.get_by_role("region", name="Conversation")
    expect(conversation.locator(".msg")).to_have_count(2)
    expect(conversation.locator(".msg.user .body")).to_have_text("How do I reset the boiler?")
    expect(conversation.get_by_role("list", name="Sources")).to_contain_text("Boiler manual")
    conversation.locator("a.cite").click()  # [1] opens its source, as in the chat
    expect(conversation.locator(".citations blockquote")).to_contain_text("red button")
    # Read-only: nothing to send, edit or regenerate.
    expect(bob.get_by_label("Message")).to_have_count(0)
    expect(bob.get_by_role("button", name="Regenerate")).to_have_count(0)
    expect(bob.get_by_role("button", name="Edit")).to_have_count(0)
    for width in (320, 390, 1280):
        bob.set_viewport_size({"width": width, "height": 800})
        assert_fits(bob, "the shared chat")
    expect(conversation.locator(".msg.assistant pre")).to_be_visible()

    # Ada revokes it: the link opens nothing any more.
    ada.get_by_role("button", name="Revoke link").click()
    expect(state).to_have_text("Link revoked: it opens nothing now.")
    expect(ada.get_by_role("button", name="Create link")).to_be_visible()
    gone = bob.goto(url)
    assert gone is not None and gone.status == 404
    expect(bob.get_by_role("alert")).to_contain_text("revoked")


def test_open_webuis_export_goes_in_through_the_chat_list(
    site: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    ada = open_page(browser, contexts, site.url + "/login", viewport={"width": 390, "height": 844})
    sign_in(ada, ADA)
    ready(ada)
    ada.get_by_role("button", name="Chats").click()  # the list is a drawer on a phone
    exported = {"name": "chat-export.json", "mimeType": "application/json"}
    ada.locator("#import-chat").set_input_files({**exported, "buffer": EXPORT.read_bytes()})
    report = ada.get_by_role("list", name="Imported chats")
    expect(report.locator("li").first).to_have_text("3 of 4 chats imported.")
    expect(report.locator("li.error")).to_have_text(
        "chat 3 'Trip ideas': a message has role 'tool', which Hearth cannot import"
    )
    sourdough = report.locator("li", has_text="Sourdough starter")
    expect(sourdough).to_contain_text("7 messages")  # every branch
    expect(sourdough).not_to_contain_text("left out")
    expect(sourdough).to_contain_text("not imported: settings: top_p")
    expect(report.locator("li", has_text="Quarterly report outline")).to_contain_text("its folder")
    assert_fits(ada, "the chat list with the import's results")
    sourdough.get_by_role("link").click()
    expect(ada.locator(".msg")).to_have_count(4)
    # The branch shown last, and the arrows to the other versions (2/2 and 1/2).
    expect(ada.locator(".msg .branch-place")).to_have_text(["2/2", "1/2"])
    expect(ada.locator(".msg.assistant .who").first).to_contain_text("llama3.1:8b")
    expect(ada.locator("#model")).to_have_value("smollm2-135m-instruct")
    ada.get_by_role("button", name="Chats").click()
    expect(ada.locator(".chat-list li.pinned")).to_contain_text("Sourdough starter")
    expect(ada.locator(".chat-list li.pinned .chat-tags")).to_have_text("baking · home")
