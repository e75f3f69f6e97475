"""Chat tags and the archived list in a real browser (Debian's chromium, Playwright) on a
fresh Hearth, on a phone and on a desktop: Ada tags a chat from its Tags menu (the list's
entry and the sidebar's filters follow without a reload), filters the list by the tag,
clears the filter, removes the tag; then searches her archived chats. Nothing scrolls
sideways. Its own people (no order to depend on with the other browser tests)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from hearth.accounts.users import UserCreate
from hearth.config import Settings
from hearth.server import create_app
from tests._server import Running, running
from tests.web._pages import assert_fits, open_page, ready

PASSWORD = "a long enough password"
ADA = "ada@example.org"
MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def site(postgres, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=postgres.new_database(), data_dir=tmp_path_factory.mktemp("tags")
    )
    with running(create_app(settings)) as server:
        body = UserCreate(email=ADA, name="Ada", password=PASSWORD)
        server.call(server.app.state.users.create(body, status="active"))
        yield server


def chat(page: Page, site: Running, title: str, text: str) -> str:
    """A chat made through the API, as the page's own script would (its CSRF token)."""
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content") or ""
    body = {"title": title, "model": MODEL, "messages": [{"role": "user", "content": text}]}
    made = page.request.post(
        site.url + "/api/chats/import", data=body, headers={"x-csrf-token": csrf}
    )
    assert made.ok, made.text()
    return made.json()["id"]


def show_list(page: Page, phone: bool) -> None:
    if phone:  # the list is a drawer
        page.get_by_role("button", name="Chats").click()


@pytest.mark.parametrize("width", [390, 1280])
def test_tag_a_chat_filter_by_it_and_search_the_archived_ones(
    site: Running, browser: Browser, contexts: list[BrowserContext], width: int
) -> None:
    phone = width < 700
    page = open_page(
        browser, contexts, site.url + "/login", viewport={"width": width, "height": 800}
    )
    page.get_by_label("Email").fill(ADA)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    ready(page)
    keeper = chat(page, site, f"Lighthouse {width}", f"The keeper climbs to lamp {width}.")
    garden = chat(page, site, f"Garden {width}", "Tomatoes by the south wall.")
    name = f"work-{width}"
    page.goto(f"{site.url}/c/{keeper}")
    ready(page)
    entry = page.locator(f'.chat-list a[href="/c/{keeper}"]')
    # In the drawer on a phone, hidden until opened: found by their place, not their role.
    filters = page.locator("#tag-filters")

    # Tag it from its Tags menu; "WORK-..." again is the same tag, not a second one.
    page.evaluate("window.notReloaded = true")
    page.locator("#tags-menu summary").click()
    page.get_by_label("Add a tag").fill(name)
    page.get_by_role("button", name="Add", exact=True).click()
    chips = page.get_by_role("list", name="This chat's tags")
    expect(chips.locator("li span")).to_have_text([name])
    page.get_by_label("Add a tag").fill(name.upper())
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_label("Add a tag")).to_have_value("")  # saved
    expect(page.locator("#tag-count")).to_have_text(" (1)")
    expect(chips.locator("li")).to_have_count(1)
    assert_fits(page, "the open Tags menu")
    # The list's entry and the sidebar's filters follow, without a reload.
    expect(entry.locator(".chat-tags")).to_have_text(name)
    expect(filters.locator("a", has_text=name)).to_have_text(f"{name} 1")
    assert page.evaluate("window.notReloaded === true")

    # A tag's filter shows only its chats; clicked again, all of them.
    page.locator("#tags-menu summary").click()  # closed
    show_list(page, phone)
    filters.get_by_role("link", name=f"{name} 1").click()  # the drawer open: visible
    expect(page).to_have_url(re.compile(rf"/c/{keeper}\?.*tag={name}"))
    listed = page.locator(".chat-list li a")
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text(f"Lighthouse {width}")
    active = filters.locator("a[aria-current]")
    expect(active).to_have_text(f"{name} 1")
    show_list(page, phone)
    assert_fits(page, "the list filtered by a tag")
    active.click()
    expect(page).not_to_have_url(re.compile("tag="))
    expect(page.locator(f'.chat-list a[href="/c/{garden}"]')).to_have_count(1)
    expect(entry).to_have_count(1)
    expect(filters.locator("a[aria-current]")).to_have_count(0)

    # Removed: gone from the chat, its entry and the filters.
    ready(page)
    page.evaluate("window.notReloaded = true")  # the filters' links load pages; this does not
    page.locator("#tags-menu summary").click()
    page.get_by_role("button", name=f"Remove tag {name}").click()
    expect(chips.locator("li")).to_have_count(0)
    expect(entry.locator(".chat-tags")).to_have_count(0)
    expect(filters.locator("a", has_text=name)).to_have_count(0)
    assert page.evaluate("window.notReloaded === true")

    # The archived chats: listed apart, and searched there.
    page.get_by_text("Chat", exact=True).click()
    page.get_by_role("button", name="Archive").click()
    expect(page).to_have_url(site.url + "/")
    ready(page)
    page.goto(f"{site.url}/c/{garden}")
    ready(page)
    page.get_by_text("Chat", exact=True).click()
    page.get_by_role("button", name="Archive").click()
    expect(page).to_have_url(site.url + "/")
    ready(page)
    show_list(page, phone)
    page.get_by_role("link", name="Archived chats").click()
    show_list(page, phone)
    expect(page.get_by_role("heading", name="Archived chats")).to_be_visible()
    search = page.get_by_role("searchbox", name="Search archived chats")
    search.fill(f"keeper {width}")  # a message's words
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"archived=true"))
    expect(page.locator(".chat-list li a")).to_have_text([f"Lighthouse {width}"])
    show_list(page, phone)
    assert_fits(page, "the archived list searched")
    search = page.get_by_role("searchbox", name="Search archived chats")
    search.fill(f"Garden {width}")
    search.press("Enter")
    expect(page.locator(".chat-list li a")).to_have_text([f"Garden {width}"])
