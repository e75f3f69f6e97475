"""The web application in a real browser (Debian's chromium, Playwright), on a fresh
Hearth with the real SmolLM2 model: the first sign-up becomes the admin, a second person
waits for approval, chats stream and are kept, Esc stops an answer, the layout holds on a
phone-width screen."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fpdf import FPDF
from playwright.sync_api import Browser, BrowserContext, Page, expect

from hearth.accounts.users import UserCreate
from hearth.config import Settings
from hearth.server import create_app
from tests._server import Running, running
from tests.web._pages import assert_fits, open_page, ready

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def site(postgres, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=postgres.new_database(), data_dir=tmp_path_factory.mktemp("web")
    )
    with running(create_app(settings)) as server:
        yield server


def sign_up(page: Page, name: str, email: str) -> None:
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").or_(
        page.get_by_role("button", name="Create administrator")
    ).click()


def sign_in(page: Page, email: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_first_admin_then_approval(
    site: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    admin = open_page(browser, contexts, site.url + "/")
    expect(admin).to_have_url(site.url + "/signup")  # nobody yet: set up the admin
    expect(admin.get_by_role("heading")).to_have_text("Create the administrator account")
    sign_up(admin, "Ada", "ada@example.org")
    expect(admin.get_by_role("link", name="Admin")).to_be_visible()

    bob = open_page(browser, contexts, site.url + "/signup")
    sign_up(bob, "Bob", "bob@example.org")
    expect(bob.get_by_role("status")).to_contain_text("wait for an administrator")
    bob.goto(site.url + "/login")
    sign_in(bob, "bob@example.org")
    expect(bob.get_by_role("alert")).to_contain_text("approval")

    admin.get_by_role("link", name="Admin").click()
    row = admin.locator("tr[data-email='bob@example.org']")
    expect(row).to_contain_text("pending")
    row.get_by_role("button", name="Approve").click()
    expect(admin.locator("tr[data-email='bob@example.org']")).to_contain_text("active")

    sign_in(bob, "bob@example.org")
    expect(bob.get_by_label("Message")).to_be_visible()
    expect(bob.get_by_role("link", name="Admin")).to_have_count(0)
    assert bob.goto(site.url + "/admin").status == 403


def test_an_invitation_link_sets_up_the_account(
    site: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    admin = open_page(browser, contexts, site.url + "/login")
    sign_in(admin, "ada@example.org")
    admin.goto(site.url + "/admin")
    admin.get_by_text("Add or invite a user").click()
    admin.locator("#new-email").fill("cy@example.org")
    admin.get_by_role("button", name="Add user").click()
    expect(admin.get_by_role("heading")).to_have_text("Invitation for cy@example.org")
    link = admin.get_by_label("Sign-up link").input_value()
    assert "/signup?invite=" in link
    admin.goto(site.url + "/admin")
    expect(admin.locator("tr[data-email='cy@example.org']")).to_contain_text("invited")

    cy = open_page(browser, contexts, link)
    expect(cy.get_by_role("heading")).to_have_text("Accept your invitation")
    sign_up(cy, "Cy", "cy@example.org")
    expect(cy.get_by_label("Message")).to_be_visible()  # signed in at once, no approval
    # Used once: the same link signs no one else in.
    again = open_page(browser, contexts, link)
    sign_up(again, "Mallory", "cy@example.org")
    expect(again.get_by_role("status")).to_be_visible()
    expect(again.get_by_label("Message")).to_have_count(0)


def test_chat_streams_is_kept_and_stops_with_escape(
    site: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = open_page(browser, contexts, site.url + "/login")
    sign_in(page, "bob@example.org")
    expect(page.get_by_label("Model")).to_have_value("smollm2-135m-instruct")
    ready(page)
    prompt = page.get_by_label("Message")
    prompt.fill("Say hello.")
    prompt.press("Enter")
    expect(page.locator(".msg.user .body")).to_have_text("Say hello.")
    answer = page.locator(".msg.assistant .body")
    expect(answer).not_to_be_empty(timeout=30_000)
    expect(page.get_by_role("button", name="Send")).to_be_visible(timeout=60_000)
    text = answer.inner_text().strip()
    assert text
    expect(page).to_have_url(f"{site.url}/c/" + page.url.rsplit("/", 1)[-1])
    # Without a reload, the header and the list name the chat: first after the question,
    # then by the model's own title, which comes a moment after the answer.
    header, current = page.locator("#chat-title"), page.locator(".chat-list a[aria-current]")
    expect(header).not_to_have_text("New chat")
    expect(page.locator(".chat-list")).not_to_contain_text("No chats yet")
    expect(current).to_have_text(header.inner_text())
    page.wait_for_timeout(7000)  # the page reads the title again 2.5 and 6 s after the answer
    stored = page.request.get(f"{site.url}/api/chats/" + page.url.rsplit("/", 1)[-1]).json()
    expect(header).to_have_text(stored["title"])
    expect(current).to_have_text(stored["title"])
    expect(page).to_have_title(f"{stored['title']} · Hearth")

    # Reloading shows the stored conversation under the same name.
    page.reload()
    expect(page.locator(".msg.assistant .body")).to_have_text(text)
    expect(page.locator(".chat-list a[aria-current]")).to_have_text(stored["title"])
    ready(page)
    prompt = page.get_by_label("Message")
    prompt.fill("Write a very long story about the sea, at least a thousand words.")
    prompt.press("Enter")
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    expect(page.locator(".msg.assistant").nth(1).locator(".body")).not_to_be_empty(timeout=30_000)
    page.keyboard.press("Escape")
    expect(page.get_by_role("status")).to_have_text("Stopped.")
    # The server saves the partial answer when it sees the browser go; a reload may come
    # first, so look a few times.
    for _ in range(20):
        page.reload()
        if page.locator(".msg.assistant.stopped").count() == 1:
            break
        page.wait_for_timeout(250)
    expect(page.locator(".msg.assistant.stopped")).to_have_count(1)


def test_export_then_import_a_chat(
    site: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = open_page(browser, contexts, site.url + "/login")
    sign_in(page, "bob@example.org")
    page.locator(".chat-list a").first.click()
    chat_id = page.url.rsplit("/", 1)[-1]
    exported = page.request.get(f"{site.url}/api/chats/{chat_id}/export").body()
    page.goto(site.url + "/")
    ready(page)
    page.locator("#import-chat").set_input_files(
        {"name": "chat.json", "mimeType": "application/json", "buffer": exported}
    )
    expect(page).not_to_have_url(f"{site.url}/c/{chat_id}")
    expect(page.locator(".msg.user .body").first).to_have_text("Say hello.")
    assert page.url.startswith(f"{site.url}/c/")


def test_shift_enter_is_a_new_line_and_phone_width_fits(
    site: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = open_page(browser, contexts, site.url + "/login", viewport={"width": 390, "height": 800})
    sign_in(page, "bob@example.org")
    ready(page)
    prompt = page.get_by_label("Message")
    prompt.type("one")
    prompt.press("Shift+Enter")
    prompt.type("two")
    expect(prompt).to_have_value("one\ntwo")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"


def test_pages_need_sign_in_and_forms_need_their_token(
    site: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = open_page(browser, contexts, site.url + "/account")
    expect(page).to_have_url(site.url + "/login?next=/account")
    # A form posted from elsewhere (no CSRF token) is refused, and no session starts.
    response = page.request.post(
        site.url + "/login", form={"email": "bob@example.org", "password": PASSWORD}
    )
    assert response.status == 403
    assert "hearth_session" not in str(page.context.cookies())


def boiler_pdf() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(
        0,
        8,
        "Boiler manual. To reset the boiler, hold the red button for ten "
        "seconds until the light blinks green.",
    )
    pdf.add_page()
    pdf.multi_cell(0, 8, "Cleaning. Clean the filter every three months with warm water.")
    return bytes(pdf.output())


def ask(page: Page, question: str) -> None:
    """Send a question and wait until its answer is stored (the page then knows its id)."""
    answered = page.locator(".msg.assistant[data-id]")
    before = answered.count()
    ready(page)
    prompt = page.get_by_label("Message")
    prompt.fill(question)
    prompt.press("Enter")
    expect(answered).to_have_count(before + 1, timeout=90_000)


def test_documents_answer_with_citations_and_sharing(
    site: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    ada = open_page(browser, contexts, site.url + "/login")
    sign_in(ada, "ada@example.org")
    ada.get_by_role("link", name="Documents").click()
    ada.get_by_label("Name").fill("Manuals")
    ada.get_by_role("button", name="Create collection").click()
    ada.get_by_label("Files").set_input_files(
        {"name": "boiler.pdf", "mimeType": "application/pdf", "buffer": boiler_pdf()}
    )
    ada.get_by_role("button", name="Upload").click()
    expect(ada.locator("#documents tr[data-status='ready']")).to_have_count(1, timeout=60_000)
    expect(ada.locator("#documents")).to_contain_text("boiler.pdf")
    collection_url = ada.url

    # Share with Bob (read); Carol gets nothing.
    ada.get_by_label("Person (email)").fill("bob@example.org")
    ada.get_by_role("button", name="Share").click()
    expect(ada.get_by_text("Shared.")).to_be_visible()

    # Ada asks in a chat with the collection attached, and sees a numbered citation.
    ada.goto(site.url + "/")
    ada.locator("#documents summary").click()
    ada.get_by_label("Manuals").check()
    expect(ada.locator("#attached-count")).to_have_text(" (1)")
    ask(ada, "How do I reset the boiler?")
    citation = ada.locator(".msg.assistant .citations li").first
    expect(citation).to_contain_text("[1]")
    expect(citation).to_contain_text("page 1")
    # Passages the answer did not cite are folded away under their own heading.
    folded = ada.locator(".msg.assistant .other-passages > summary")
    if folded.count():
        folded.first.click()
    citation.locator("summary").click()
    expect(citation.locator("blockquote")).to_contain_text("red button")
    # A source opens its document at the passage, highlighted.
    with ada.expect_navigation():
        citation.get_by_role("link", name="Open in the document").click()
    expect(ada.locator(".passage.highlighted")).to_contain_text("red button")
    expect(ada.get_by_role("link", name="open the PDF here").first).to_have_attribute(
        "href", re.compile(r"/api/documents/.+/file#page=1")
    )
    ada.go_back()
    # An answer that cites [1] links it to its source, listed under "Sources".
    chat_id = ada.url.rsplit("/", 1)[-1]
    given = ada.request.get(f"{site.url}/api/chats/{chat_id}/messages").json()["items"][-1]
    csrf = ada.locator("meta[name=csrf-token]").get_attribute("content")
    cited = {"title": "Cited", "model": "smollm2-135m-instruct", "messages": [
        {"role": "user", "content": "How do I reset it?"},
        {"role": "assistant", "content": "Hold the red button [1].",
         "citations": given["citations"]},
    ]}  # fmt: skip
    made = ada.request.post(
        site.url + "/api/chats/import", data=cited, headers={"x-csrf-token": csrf}
    )
    ada.goto(f"{site.url}/c/{made.json()['id']}")
    ada.locator(".msg.assistant a.cite").click()
    sources = ada.get_by_role("list", name="Sources")
    expect(sources.locator("blockquote").first).to_be_visible()
    expect(sources).to_contain_text("[1] ")

    bob = open_page(browser, contexts, site.url + "/login")
    sign_in(bob, "bob@example.org")
    bob.get_by_role("link", name="Documents").click()
    expect(bob.locator(".collections")).to_contain_text("Manuals")
    expect(bob.locator(".collections")).to_contain_text("shared with you")
    bob.goto(site.url + "/")
    bob.locator("#documents summary").click()
    bob.get_by_label("Manuals").check()
    expect(bob.locator("#attached-count")).to_have_text(" (1)")
    ask(bob, "How often should the filter be cleaned?")
    expect(bob.locator(".msg.assistant .citations")).to_contain_text("boiler.pdf")

    site.call(
        site.app.state.users.create(
            UserCreate(email="carol@example.org", password=PASSWORD), status="active"
        )
    )
    carol = open_page(browser, contexts, site.url + "/login")
    sign_in(carol, "carol@example.org")
    assert carol.goto(collection_url).status == 404
    carol.goto(site.url + "/collections")
    expect(carol.locator(".collections")).not_to_contain_text("Manuals")
    collection_id = collection_url.rsplit("/", 1)[-1]
    search = carol.request.post(
        f"{site.url}/api/collections/{collection_id}/search",
        data={"query": "boiler"},
        headers={"x-csrf-token": carol.locator("meta[name=csrf-token]").get_attribute("content")},
    )
    assert search.status == 404

    # Ada stops sharing with Bob, with the button beside his name: Bob loses the collection.
    ada.goto(collection_url)
    expect(ada.locator(".grants")).to_contain_text("bob@example.org — read")
    for width in (320, 390):  # the list of grants fits a phone
        ada.set_viewport_size({"width": width, "height": 800})
        fits = "document.documentElement.scrollWidth <= window.innerWidth"
        wide = ada.evaluate(
            "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect()"
            ".right > window.innerWidth + 1).slice(0, 5).map(e => e.tagName + '.' + e.className"
            " + ' ' + Math.round(e.getBoundingClientRect().right))"
        )
        assert ada.evaluate(fits), f"the collection page scrolls sideways at {width} px: {wide}"
    ada.set_viewport_size({"width": 1280, "height": 800})
    ada.get_by_role("button", name="Stop sharing with bob@example.org").click()
    expect(ada.get_by_text("No longer shared.")).to_be_visible()
    expect(ada.get_by_text("Shared with nobody.")).to_be_visible()
    assert bob.goto(collection_url).status == 404


def test_api_docs_work_with_the_network_blocked(
    site: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    """/docs (Swagger UI) and /redoc render the API from Hearth's own copy of their
    scripts: every request off the site is blocked, and none but ReDoc's footer logo (an
    image on its vendor's site, which it cannot be told to drop) is even attempted."""
    context = browser.new_context()
    contexts.append(context)
    elsewhere: list[tuple[str, str]] = []

    def only_the_site(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.url.startswith(site.url):
            route.continue_()
        else:
            elsewhere.append((route.request.resource_type, route.request.url))
            route.abort()

    context.route("**/*", only_the_site)
    page = context.new_page()
    page.goto(site.url + "/docs")
    expect(page).to_have_title("Hearth API")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("OAS 3.1")
    expect(page.locator(".opblock-summary-path", has_text="/v1/chat/completions")).to_have_count(1)
    icon = page.request.get(site.url + "/favicon.ico")  # followed to the page's own icon
    assert icon.ok and icon.headers["content-type"].startswith("image/svg+xml")
    page.goto(site.url + "/redoc")
    expect(page.locator(".api-info h1")).to_contain_text("Hearth")  # ReDoc drew it
    assert [kind for kind, _ in elsewhere if kind != "image"] == [], elsewhere


def test_a_multi_file_upload_reports_each_file_and_goes_on(
    site: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    """A refused file (unsupported type) and a file that fails to parse do not stop the
    upload: each file gets its own line, and the good one is ingested."""
    ada = open_page(browser, contexts, site.url + "/login", viewport={"width": 390, "height": 844})
    sign_in(ada, "ada@example.org")
    ada.goto(site.url + "/collections")
    ada.get_by_label("Name").fill("Mixed")
    ada.get_by_role("button", name="Create collection").click()
    ready(ada)
    ada.get_by_label("Files").set_input_files(
        [
            {"name": "tool.exe", "mimeType": "application/octet-stream", "buffer": b"MZ\x90"},
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 cut"},
            {"name": "notes.md", "mimeType": "text/markdown", "buffer": b"# Notes\n\nKept."},
        ]
    )
    ada.get_by_role("button", name="Upload").click()
    lines = ada.locator("#upload-status li")
    expect(lines.nth(2)).to_have_text("notes.md: ready", timeout=60_000)
    expect(lines.nth(0)).to_contain_text("tool.exe: refused — ")
    expect(lines.nth(0)).to_have_class("error")
    expect(lines.nth(1)).to_contain_text("broken.pdf: failed — ")
    ada.get_by_role("link", name="Show the documents").click()
    expect(ada.locator("#documents tr[data-status='ready']")).to_contain_text("Notes")
    assert ada.evaluate("document.documentElement.scrollWidth <= innerWidth")


def test_every_page_fits_a_phone_and_the_chat_list_is_a_drawer(
    site: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    """No page scrolls sideways at 320, 390 or 1280 px, with the longest things a page
    shows: a long title, a wide table, a long code line, a long link. On a phone the chat
    list is a drawer that "Chats" opens; on a desktop it stays beside the chat."""
    ada = open_page(browser, contexts, site.url + "/login", viewport={"width": 390, "height": 844})
    sign_in(ada, "ada@example.org")
    ready(ada)
    wide = (
        "| " + " | ".join(f"column {i}" for i in range(12)) + " |\n"
        + "|" + "---|" * 12 + "\n" + "| " + " | ".join("x" * 12 for _ in range(12)) + " |\n\n"
        + "```\n" + "print('" + "a" * 300 + "')\n```\n\n"
        + "https://example.org/" + "long-path-segment/" * 20 + "\n\n"
        + "Inline \\(\\frac{a}{b}\\) and a wide display:\n\n$$\n"
        + " + ".join(f"x_{{{i}}}^{{2}}" for i in range(40)) + "\n$$\n"
    )  # fmt: skip
    exported = {
        "title": "A very long chat title that goes on and on about the boiler manual " * 3,
        "model": "smollm2-135m-instruct",
        "messages": [
            {"role": "user", "content": "Show me a wide table " + "and " * 40},
            {"role": "assistant", "content": wide},
        ],
    }
    csrf = ada.locator("meta[name=csrf-token]").get_attribute("content")
    imported = ada.request.post(
        site.url + "/api/chats/import", data=exported, headers={"x-csrf-token": csrf}
    )
    assert imported.ok, imported.text()
    chat_url = f"{site.url}/c/{imported.json()['id']}"
    collections = ada.request.get(site.url + "/api/collections").json()
    # A benchmark run with its wide table of stages (another tool's results, imported).
    result = {
        "model_id": "a-model-with-a-rather-long-name-" * 3,
        "backend": "vllm",
        "num_prompts": 10,
        "completed": 10,
        "request_rate": 2.0,
        "duration": 5.0,
        "request_throughput": 2.0,
        "output_throughput": 100.0,
        "median_ttft_ms": 50.0,
    }
    run = ada.request.post(
        site.url + "/api/lab/import", headers={"x-csrf-token": csrf},
        multipart={"file": {"name": "run.json", "mimeType": "application/json",
                            "buffer": json.dumps(result).encode()}},
    )  # fmt: skip
    assert run.ok, run.text()
    pages = [
        "/", chat_url, "/collections", f"/collections/{collections[0]['id']}", "/account",
        "/admin", "/admin/keys", "/admin/usage", "/admin/collections", "/no-such-page",
        "/catalog", "/lab", f"/lab/runs/{run.json()[0]['id']}", "/lab/metrics",
    ]  # fmt: skip
    visitor = open_page(browser, contexts, site.url + "/login")
    for width in (320, 390, 1280):
        for page, urls in ((ada, pages), (visitor, ["/login", "/signup"])):
            page.set_viewport_size({"width": width, "height": 800})
            for url in urls:
                page.goto(url if url.startswith("http") else site.url + url)
                assert_fits(page, url)

    # The drawer, on a phone.
    ada.set_viewport_size({"width": 390, "height": 844})
    ada.goto(chat_url)
    ready(ada)
    # The math came as MathML from the server, and the browser laid it out as math: the
    # fraction's a sits above its b, and the wide display scrolls in its own box.
    above = ada.locator(".msg.assistant math mfrac mi").nth(0).bounding_box()
    below = ada.locator(".msg.assistant math mfrac mi").nth(1).bounding_box()
    assert above is not None and below is not None
    assert above["y"] + above["height"] <= below["y"] + 1, (above, below)
    # The chat's own settings, from its menu, on a phone.
    ada.get_by_text("Settings", exact=True).click()
    ada.get_by_label("Longest answer, in tokens").fill("64")
    ada.get_by_label("Temperature").fill("0.3")
    ada.get_by_role("button", name="Save settings").click()
    expect(ada.get_by_role("status")).to_have_text("Settings saved.")
    saved = ada.request.get(chat_url.replace("/c/", "/api/chats/")).json()
    assert (saved["max_tokens"], saved["temperature"], saved["system_prompt"]) == (64, 0.3, None)
    assert_fits(ada, "the chat with its settings open")
    # A message longer than the model's window is flagged while it is typed.
    note = ada.locator("#composer-note")
    ada.get_by_label("Message").fill("word " * 1000)
    expect(note).to_be_visible()
    expect(note).to_contain_text("the start of this message will be cut")
    assert_fits(ada, "the chat with the length note")
    ada.get_by_label("Message").fill("A short question.")
    expect(note).to_be_hidden()
    chats = ada.get_by_role("complementary", name="Chats")
    toggle = ada.get_by_role("button", name="Chats")
    expect(chats).not_to_be_visible()
    expect(ada.get_by_role("button", name="Send")).to_be_visible()
    box = ada.get_by_role("button", name="Send").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390
    toggle.click()
    expect(chats).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    ada.keyboard.press("Escape")
    expect(chats).not_to_be_visible()
    toggle.click()
    chats.get_by_role("link", name="New chat").click()
    expect(ada).to_have_url(site.url + "/")
    expect(ada.get_by_role("complementary", name="Chats")).not_to_be_visible()
    # On a desktop the list is always there and the button is not.
    ada.set_viewport_size({"width": 1280, "height": 800})
    expect(ada.get_by_role("complementary", name="Chats")).to_be_visible()
    expect(ada.get_by_role("button", name="Chats")).not_to_be_visible()


def test_pin_archive_and_unarchive_a_chat(
    site: Running, browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = open_page(browser, contexts, site.url + "/login")
    sign_in(page, "bob@example.org")
    page.locator(".chat-list a").first.click()
    ready(page)
    chat_url = page.url
    link = page.locator(f'.chat-list a[href="{chat_url.removeprefix(site.url)}"]')
    page.get_by_text("Chat", exact=True).click()
    page.get_by_role("button", name="Pin").click()
    expect(link.locator(".tag")).to_have_text("pinned")
    expect(page.locator(".chat-list li").first).to_have_class("pinned")
    page.get_by_text("Chat", exact=True).click()
    page.get_by_role("button", name="Archive").click()
    expect(page).to_have_url(site.url + "/")
    expect(link).to_have_count(0)
    page.get_by_role("link", name="Archived chats").click()
    expect(page.get_by_role("heading", name="Archived chats")).to_be_visible()
    link.click()
    ready(page)
    page.get_by_text("Chat", exact=True).click()
    page.get_by_role("button", name="Unarchive").click()
    expect(page).to_have_url(chat_url)
    expect(page.locator("#archive[data-on='false']")).to_have_count(1)  # reloaded
    ready(page)
    page.goto(site.url + "/")
    expect(link).to_have_count(1)
