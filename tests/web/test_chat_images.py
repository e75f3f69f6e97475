"""Images in the chat page, in a real browser (Debian's chromium, Playwright): attached
through the Image button's file input, shown as thumbnails with Remove, sent to a model
that reads images (the fake upstream checks and keeps the bytes it got), shown in the
message and opening at full size, on a phone and a desktop without sideways scrolling; and
with the real SmolLM2, the control disabled and a pasted image refused with the reason."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from hearth.server import create_app
from tests._accounts import PASSWORD, create_user
from tests._server import Running, running
from tests.chat._images import VISION, png, vision_settings
from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.web._pages import assert_fits, open_page, ready

SMOLLM2 = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream(chunk_count=3, chunk_delay=0) as fake:
        yield fake


@pytest.fixture(scope="module")
def site(postgres, tmp_path_factory, upstream, hearth) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    # `hearth` (the session's, with SmolLM2) too: both start before the browser, whose
    # event loop would refuse the set-up's asyncio.run() afterwards.
    settings = vision_settings(
        postgres.new_database(), tmp_path_factory.mktemp("web-images"), upstream.base_url
    )
    with running(create_app(settings)) as server:
        yield server


def signed_in_page(
    server: Running, browser: Browser, contexts: list[BrowserContext], width: int
) -> Page:
    user = create_user(server)
    page = open_page(
        browser, contexts, server.url + "/login", viewport={"width": width, "height": 800}
    )
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    ready(page)
    return page


def image_file(name: str, data: bytes) -> dict[str, object]:
    return {"name": name, "mimeType": "image/png", "buffer": data}


@pytest.mark.parametrize("width", [390, 1280])
def test_an_image_is_attached_sent_and_shown(
    site: Running,
    upstream: FakeOpenAIUpstream,
    browser: Browser,
    contexts: list[BrowserContext],
    width: int,
) -> None:
    upstream.reset()
    page = signed_in_page(site, browser, contexts, width)
    expect(page.locator("#model")).to_have_value(VISION)
    expect(page.locator("#attach-image")).to_be_enabled()
    picture, other = png(40, 30, (220, 30, 30)), png(10, 10, (0, 0, 250))

    # Two chosen, one removed: one thumbnail left.
    page.locator("#attach-image").set_input_files(
        [image_file("red.png", picture), image_file("blue.png", other)]
    )
    strip = page.get_by_role("list", name="Images to send")
    expect(strip.locator("img")).to_have_count(2)
    page.get_by_role("button", name="Remove image 2").click()
    expect(strip.locator("img")).to_have_count(1)
    expect(strip.locator("img")).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    assert_fits(page, "the composer with a thumbnail")

    page.get_by_label("Message").fill("What is in this picture?")
    page.get_by_label("Message").press("Enter")
    question = page.locator(".msg.user")
    shown = question.locator(".images img")
    expect(shown).to_have_count(1)
    expect(shown).to_have_attribute("src", re.compile(r"^/api/chats/[0-9a-f-]+/images/[0-9a-f-]+$"))
    expect(page.locator(".msg.assistant .body.md")).to_contain_text("tok0")
    expect(strip).to_be_hidden()
    page.wait_for_function("document.querySelector('.msg.user .images img').naturalWidth === 40")
    # The engine got exactly the chosen image's bytes.
    assert upstream.images == [("image/png", picture)]
    assert_fits(page, "a message with its image")
    if width < 1000:  # the narrowest phone too
        page.set_viewport_size({"width": 320, "height": 700})
        assert_fits(page, "a message with its image")
        page.set_viewport_size({"width": width, "height": 800})

    # After a reload the stored message shows it too; its link opens it at full size.
    page.reload()
    link = page.locator(".msg.user .images a")
    expect(link).to_have_count(1)
    full = page.request.get(site.url + (link.get_attribute("href") or ""))
    assert full.ok and full.body() == picture
    assert full.headers["content-type"] == "image/png"
    assert_fits(page, "the stored chat with its image")


def test_smollm2_takes_no_images_and_says_so(
    site: Running, hearth: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = signed_in_page(hearth, browser, contexts, 390)
    expect(page.locator("#model")).to_have_value(SMOLLM2)
    expect(page.locator("#attach-image")).to_be_disabled()
    expect(page.locator("#attach-label")).to_have_attribute("aria-disabled", "true")
    # A pasted image is refused before anything is sent, with the reason.
    page.locator("#prompt").evaluate(
        """(prompt, b64) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const data = new DataTransfer();
          data.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
          prompt.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true,
                                                           cancelable: true }));
        }""",
        base64.b64encode(png()).decode(),
    )
    expect(page.locator("#image-note")).to_have_text(
        f"{SMOLLM2} does not read images: choose a model that reads images to attach one."
    )
    expect(page.get_by_role("list", name="Images to send")).to_be_hidden()
    assert_fits(page, "the composer with its notice")
