"""Presets in a real browser (Debian's chromium, Playwright) on a fresh Hearth with the real
SmolLM2 model: Ada opens Presets from the chat page's navigation, saves one shared with her
group, starts a chat from it (the chat takes its system prompt and answer length), changes
and deletes it; Bob, in her group, finds it beside the models of a new chat. At a phone's
width and a desktop's, nothing scrolls sideways. Its own people and site."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from hearth.accounts.users import UserCreate
from hearth.config import Settings
from hearth.server import create_app
from tests._server import Running, running
from tests.web._pages import assert_fits, open_page

PASSWORD = "a long enough password"
ADA, BOB = "ada@example.org", "bob@example.org"
PERSONA = "You are a ship's cook who answers every question with a recipe. " * 8
# One word longer than a phone is wide: a page that does not wrap it scrolls sideways.
LONG_WORD = "Galley" + "x" * 60


@pytest.fixture(scope="module")
def site(postgres, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=postgres.new_database(), data_dir=tmp_path_factory.mktemp("presets")
    )
    with running(create_app(settings)) as server:
        users = server.app.state.users
        group = server.call(users.create_group("Kitchen"))
        for name, email in (("Ada", ADA), ("Bob", BOB)):
            body = UserCreate(email=email, name=name, password=PASSWORD)
            user = server.call(users.create(body, status="active"))
            server.call(users.set_member(group.id, user.id, member=True))
        yield server


def sign_in(page: Page, email: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("html[data-ready]")).to_have_count(1)


@pytest.mark.parametrize("width", [390, 1280])
def test_a_preset_is_made_shared_and_starts_a_chat(
    site: Running, browser: Browser, contexts: list[BrowserContext], width: int
) -> None:
    viewport = {"width": width, "height": 844}
    ada = open_page(browser, contexts, site.url + "/login", viewport=viewport)
    sign_in(ada, ADA)
    ada.get_by_role("navigation", name="Main").get_by_role("link", name="Presets").click()
    expect(ada.get_by_role("heading", level=1)).to_have_text("Presets")
    name = f"{LONG_WORD} {width}"
    ada.get_by_label("Name").fill(name)
    ada.get_by_label("Description").fill("Recipes for everything")
    ada.get_by_label("System prompt").fill(PERSONA)
    ada.get_by_label("Longest answer, in tokens").fill("8")
    ada.get_by_label("Kitchen").check()
    assert_fits(ada, "the presets page")
    ada.get_by_role("button", name="Create preset").click()
    expect(ada.get_by_role("status")).to_have_text("Preset created.")
    expect(ada.get_by_role("heading", level=1)).to_have_text(name)
    assert_fits(ada, "a preset's page")
    preset_id = ada.url.split("/presets/")[1].split("?")[0]

    # Started from its page: the chat page's picker has it chosen, beside the models.
    ada.get_by_role("link", name="Start a chat with it").click()
    picker = ada.locator("#model")
    expect(picker.locator("option:checked")).to_have_text(name)
    expect(picker.locator("optgroup[label=Presets] option")).to_have_count(1)
    assert_fits(ada, "a new chat with presets in its picker")
    ada.get_by_label("Message").fill("What is for dinner?")
    ada.get_by_label("Message").press("Enter")
    expect(ada).to_have_url(re.compile(r"/c/[0-9a-f-]{36}$"))
    expect(ada.locator(".msg.assistant[data-id]")).to_have_count(1, timeout=120_000)
    chat = ada.request.get(ada.url.replace("/c/", "/api/chats/")).json()
    assert (chat["preset_id"], chat["system_prompt"], chat["max_tokens"]) == (preset_id, PERSONA, 8)
    assert_fits(ada, "the chat started from a preset")

    # Bob, in the Kitchen group, finds it beside the models when he starts a chat.
    bob = open_page(browser, contexts, site.url + "/login", viewport=viewport)
    sign_in(bob, BOB)
    offered = bob.locator("#model optgroup[label=Presets] option", has_text=name)
    expect(offered).to_have_count(1)
    bob.goto(site.url + "/presets")
    listed = bob.locator(".preset-list li", has_text=name)
    expect(listed).to_contain_text("shared with you")
    listed.get_by_role("link", name=name, exact=True).click()
    expect(bob.get_by_role("button", name="Save preset")).to_have_count(0)  # not his to change
    assert_fits(bob, "a preset shared with him")

    # Ada changes it, then deletes it; the chat keeps what it took.
    ada.goto(f"{site.url}/presets/{preset_id}")
    ada.get_by_label("Longest answer, in tokens").fill("12")
    ada.get_by_role("button", name="Save preset").click()
    expect(ada.get_by_role("status")).to_have_text("Preset saved.")
    expect(ada.get_by_label("Longest answer, in tokens")).to_have_value("12")
    expect(ada.get_by_label("Kitchen")).to_be_checked()
    ada.get_by_role("button", name="Delete preset").click()
    expect(ada.get_by_role("status")).to_have_text("Preset deleted.")
    expect(ada.locator(".preset-list li", has_text=name)).to_have_count(0)
    kept = ada.request.get(f"{site.url}/api/chats/{chat['id']}").json()
    assert (kept["preset_id"], kept["max_tokens"]) == (None, 8)


def test_a_preset_form_refused_says_why(
    site: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    ada = open_page(browser, contexts, site.url + "/login", viewport={"width": 320, "height": 700})
    sign_in(ada, ADA)
    ada.goto(site.url + "/presets")
    ada.get_by_label("Name").fill("Too hot")
    ada.get_by_label("Temperature").evaluate("(field) => { field.max = ''; field.value = '5'; }")
    ada.get_by_role("button", name="Create preset").click()
    expect(ada.get_by_role("alert")).to_contain_text("temperature")
    expect(ada.get_by_label("Name")).to_have_value("Too hot")  # what was written is kept
    assert_fits(ada, "a refused preset form")
