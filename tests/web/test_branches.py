"""Branches in a real browser (Debian's chromium, Playwright) with the real SmolLM2 model,
on a phone and on a desktop: the arrows "< 1/2 >" switch to another version of a message
without a reload; Regenerate keeps the earlier answers a click away (1/3 .. 3/3); Edit
opens the message in place, Cancel (or Escape) puts it back and changes nothing, Save
answers the new version and the old one stays reachable. Its own site and person."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from hearth.accounts.users import UserCreate
from hearth.config import Settings
from hearth.server import create_app
from tests._server import Running, running
from tests.web._pages import assert_fits

PASSWORD = "a long enough password"
EMAIL = "cleo@example.org"
MODEL = "smollm2-135m-instruct"
CHAT = {
    "title": "Trees",
    "model": MODEL,
    "max_tokens": 6,  # SmolLM2 may loop: short answers
    "messages": [
        {"parent": None, "role": "user", "content": "Which tree is tallest?"},
        {"parent": 1, "role": "assistant", "content": "The coast redwood."},
        {"parent": 2, "role": "user", "content": "Where does it grow?"},
        {"parent": 3, "role": "assistant", "content": "In northern California."},
        {"parent": 2, "role": "user", "content": "How old can it get?"},
        {"parent": 5, "role": "assistant", "content": "Over two thousand years."},
    ],
    "current": 4,
}
ANSWERING = 60_000  # ms: a short answer from the small model on a shared CPU


@pytest.fixture(scope="module")
def site(postgres, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=postgres.new_database(), data_dir=tmp_path_factory.mktemp("branches")
    )
    with running(create_app(settings)) as server:
        body = UserCreate(email=EMAIL, name="Cleo", password=PASSWORD)
        server.call(server.app.state.users.create(body, status="active"))
        yield server


def signed_in_page(
    browser: Browser, contexts: list[BrowserContext], site: Running, width: int
) -> Page:
    context = browser.new_context(viewport={"width": width, "height": 800})
    contexts.append(context)
    page = context.new_page()
    page.goto(site.url + "/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("html[data-ready]")).to_have_count(1)
    return page


def export(page: Page, site: Running, chat_id: str) -> dict[str, Any]:
    return page.request.get(f"{site.url}/api/chats/{chat_id}/export").json()


def answered(page: Page) -> None:
    expect(page.get_by_role("button", name="Send")).to_be_visible(timeout=ANSWERING)


@pytest.mark.parametrize("width", [390, 1280])
def test_versions_of_a_message_are_kept_and_switched(
    site: Running, browser: Browser, contexts: list[BrowserContext], width: int
) -> None:
    page = signed_in_page(browser, contexts, site, width)
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content") or ""
    made = page.request.post(
        site.url + "/api/chats/import", data=CHAT, headers={"x-csrf-token": csrf}
    )
    assert made.ok, made.text()
    chat_id = made.json()["id"]
    page.goto(f"{site.url}/c/{chat_id}")
    expect(page.locator("html[data-ready]")).to_have_count(1)
    page.evaluate("window.notReloaded = true")
    messages = page.locator("#log article.msg")
    question = messages.nth(2)

    # The second question has two versions: the first is shown, "< 1/2 >".
    expect(messages).to_have_count(4)
    expect(page.locator(".branch-place")).to_have_text(["1/2"])
    expect(question.get_by_role("button", name="Previous version")).to_be_disabled()
    assert_fits(page, "a chat with versions")
    question.get_by_role("button", name="Next version").click()
    expect(question.locator(".body")).to_have_text("How old can it get?")
    expect(question.locator(".branch-place")).to_have_text("2/2")
    expect(messages.nth(3).locator(".body")).to_have_text("Over two thousand years.")
    question.get_by_role("button", name="Previous version").click()
    expect(question.locator(".body")).to_have_text("Where does it grow?")
    expect(messages.nth(3).locator(".body")).to_have_text("In northern California.")
    assert page.evaluate("window.notReloaded === true")

    # Regenerate twice: three answers, the newest shown (3/3); the arrows go back to each.
    answer = messages.nth(3)
    for place in ("2/2", "3/3"):
        answer.get_by_role("button", name="Regenerate").click()
        answered(page)
        expect(answer.locator(".branch-place")).to_have_text(place, timeout=ANSWERING)
    expect(answer.get_by_role("button", name="Next version")).to_be_disabled()
    answer.get_by_role("button", name="Previous version").click()
    expect(answer.locator(".branch-place")).to_have_text("2/3")
    answer.get_by_role("button", name="Previous version").click()
    expect(answer.locator(".branch-place")).to_have_text("1/3")
    expect(answer.locator(".body")).to_have_text("In northern California.")
    assert_fits(page, "an answer with three versions")
    assert len(export(page, site, chat_id)["messages"]) == 8  # nothing was deleted

    # Edit, then Cancel (and Escape): the message as it was, nothing stored.
    first = messages.nth(0)
    for leave in ("Cancel", "Escape"):
        first.get_by_role("button", name="Edit").click()
        editor = first.get_by_label("Edit message")
        expect(editor).to_have_value("Which tree is tallest?")
        editor.fill("Something else entirely")
        assert_fits(page, "a message being edited")
        if leave == "Cancel":
            first.get_by_role("button", name="Cancel").click()
        else:
            editor.press("Escape")
        expect(first.get_by_label("Edit message")).to_have_count(0)
        expect(first.locator(".body")).to_have_text("Which tree is tallest?")
    assert len(export(page, site, chat_id)["messages"]) == 8
    expect(messages).to_have_count(4)

    # Edit and Save: a new version of the first question, answered; the old one a click away.
    first.get_by_role("button", name="Edit").click()
    first.get_by_label("Edit message").fill("Which tree is oldest?")
    first.get_by_role("button", name="Save and send").click()
    answered(page)
    expect(first.locator(".branch-place")).to_have_text("2/2", timeout=ANSWERING)
    expect(first.locator(".body")).to_have_text("Which tree is oldest?")
    expect(messages).to_have_count(2)
    first.get_by_role("button", name="Previous version").click()
    expect(first.locator(".body")).to_have_text("Which tree is tallest?")
    expect(messages).to_have_count(4)
    # The old branch at its newest leaf: the last answer regenerated there.
    expect(messages.nth(3).locator(".branch-place")).to_have_text("3/3")
    assert page.evaluate("window.notReloaded === true")
    assert_fits(page, "a chat after an edit")

    # A reload shows the same branch (it is stored, not only on the page).
    page.reload()
    expect(page.locator("#log article.msg")).to_have_count(4)
    expect(page.locator(".branch-place")).to_have_text(["1/2", "1/2", "3/3"])
    exported = export(page, site, chat_id)
    assert len(exported["messages"]) == 10
    assert [m["parent"] for m in exported["messages"]][-2:] == [None, 9]
