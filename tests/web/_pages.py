"""What the browser tests share: a page in a context of its own (closed after the test by
the `contexts` fixture), and the wait for a page's script to be wired."""

from __future__ import annotations

from playwright.sync_api import Browser, BrowserContext, Page, expect


def open_page(browser: Browser, contexts: list[BrowserContext], url: str, **options) -> Page:  # type: ignore[no-untyped-def]
    context = browser.new_context(**options)
    contexts.append(context)
    page = context.new_page()
    page.goto(url)
    return page


def ready(page: Page) -> None:
    """Wait until the page's script has wired its forms (it marks <html data-ready>): a key
    pressed before that would be lost, as it would be for a person."""
    expect(page.locator("html[data-ready]")).to_have_count(1)


# The first few elements that stick out past the viewport's right edge, for the message.
WIDE_CULPRITS = (
    "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right"
    " > innerWidth + 1 && getComputedStyle(e).visibility !== 'hidden').slice(0, 5)"
    ".map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
)


def assert_fits(page: Page, what: str) -> None:
    """The page does not scroll sideways at its width (a phone's: no horizontal scroll)."""
    fits = page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    assert fits, f"{what} scrolls sideways at {page.viewport_size}: {page.evaluate(WIDE_CULPRITS)}"
