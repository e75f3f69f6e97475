"""The first page in a real browser (Debian's chromium driven by Playwright): chat with the
real model and watch the answer stream in; stop a stream with Esc."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = os.environ.get("HEARTH_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, base_url: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    page = browser.new_page()
    page.goto(base_url + "/")
    yield page
    if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"{request.node.name}.png", full_page=True)
    page.close()


def test_chat_streams_an_answer(page: Page) -> None:
    expect(page.get_by_label("Model")).to_have_value("smollm2-135m-instruct")
    prompt = page.get_by_label("Message")
    prompt.fill("Say hello.")
    prompt.press("Enter")
    expect(page.locator(".msg.user")).to_have_text("Say hello.")
    answer = page.locator(".msg.assistant")
    expect(answer).not_to_be_empty(timeout=30_000)
    expect(page.get_by_role("button", name="Send")).to_be_visible(timeout=60_000)
    assert answer.inner_text().strip()
    assert "error" not in (answer.get_attribute("class") or "")


def test_escape_stops_a_stream(page: Page) -> None:
    prompt = page.get_by_label("Message")
    prompt.fill("Write a very long story about the sea, at least a thousand words.")
    prompt.press("Enter")
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_visible()
    expect(page.locator(".msg.assistant")).not_to_be_empty(timeout=30_000)
    page.keyboard.press("Escape")
    expect(page.get_by_role("status")).to_have_text("Stopped.")
    expect(stop).to_be_hidden()
