"""The `/catalog` page: read by everyone signed in, edited by admins through forms that
need their CSRF token; and in a real browser (chromium), it fits a 320 px screen."""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.sync_api import Browser, BrowserContext, expect

from tests._accounts import PASSWORD, create_user, signed_in
from tests._server import Running
from tests.web.conftest import browser, contexts  # noqa: F401  (the browser fixtures)


def csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def test_users_read_and_admins_edit(hearth: Running) -> None:
    person = signed_in(hearth, create_user(hearth))
    page = person.get("/catalog")
    assert page.status_code == 200
    assert "smollm2-135m-instruct@local" in page.text and "Q4_1" in page.text
    assert 'href="/catalog"' in page.text  # in the navigation
    assert "Add a model" not in page.text and "update_model" not in page.text
    refused = person.post(
        "/catalog", data={"action": "create_model", "name": "x", "csrf_token": csrf(page)}
    )
    assert refused.status_code == 403

    admin = signed_in(hearth, create_user(hearth, admin=True))
    page = admin.get("/catalog")
    assert "Add a model" in page.text and "update_model" in page.text
    name = f"l4-{uuid.uuid4().hex[:6]}"
    form = {"action": "create_hardware", "name": name, "accelerator": "L4",
            "accelerator_count": "1", "on_demand_per_hour": "0.80", "spot_per_hour": "",
            "cpu_cores": "", "memory_gb": "", "notes": ""}  # fmt: skip
    assert admin.post("/catalog", data=form).status_code == 403  # no CSRF token
    done = admin.post("/catalog", data=form | {"csrf_token": csrf(page)})
    assert done.status_code == 303 and done.headers["location"] == "/catalog?done=create"
    (made,) = [h for h in admin.get("/api/catalog/hardware").json() if h["name"] == name]
    assert (made["accelerator"], made["on_demand_per_hour"], made["spot_per_hour"]) == (
        "L4",
        0.8,
        None,
    )
    assert f"<td>{name}</td><td>1 \u00d7 L4</td>" in admin.get("/catalog").text

    # Edit (an emptied field clears it, or keeps it where it cannot be empty), then a mistake.
    edit = form | {"action": "update_hardware", "id": made["id"], "csrf_token": csrf(page),
                   "spot_per_hour": "0.3", "accelerator": "", "accelerator_count": "",
                   "on_demand_per_hour": "1.5"}  # fmt: skip
    assert admin.post("/catalog", data=edit).status_code == 303
    edited = admin.get(f"/api/catalog/hardware/{made['id']}").json()
    assert (edited["accelerator"], edited["accelerator_count"]) == (None, 1)
    assert (edited["on_demand_per_hour"], edited["spot_per_hour"]) == (1.5, 0.3)
    bad = admin.post("/catalog", data=edit | {"on_demand_per_hour": "-1"})
    assert bad.status_code == 400 and "on_demand_per_hour" in bad.text
    assert admin.get(f"/api/catalog/hardware/{made['id']}").json() == edited

    gone = {"action": "delete_hardware", "id": made["id"], "csrf_token": csrf(page)}
    assert admin.post("/catalog", data=gone).status_code == 303
    assert admin.get(f"/api/catalog/hardware/{made['id']}").status_code == 404
    # A model in use: the page says why it stays.
    smol = next(
        m for m in admin.get("/api/catalog/models").json() if m["name"] == "smollm2-135m-instruct"
    )
    kept = admin.post(
        "/catalog", data={"action": "delete_model", "id": smol["id"], "csrf_token": csrf(page)}
    )
    assert kept.status_code == 409 and "is used by the deployment" in kept.text

    anonymous = httpx.get(f"{hearth.url}/catalog", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


def test_the_page_fits_a_phone(
    hearth: Running,
    browser: Browser,  # noqa: F811
    contexts: list[BrowserContext],  # noqa: F811
) -> None:
    """At 320 px the page does not scroll sideways, with a long source in the table and an
    edit form open; the tables scroll in their own boxes."""
    admin = signed_in(hearth, create_user(hearth, admin=True))
    long_source = "https://huggingface.co/" + "a-very-long-organisation-name/" * 6 + "model.gguf"
    made = admin.post(
        "/api/catalog/models", json={"name": f"wide-{uuid.uuid4().hex[:6]}", "source": long_source}
    )
    assert made.status_code == 201, made.text
    for is_admin in (False, True):
        account = create_user(hearth, admin=is_admin)
        context = browser.new_context(viewport={"width": 320, "height": 700})
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{hearth.url}/login?next=/catalog")
        page.get_by_label("Email").fill(account.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Catalog", exact=True)).to_be_visible()
        expect(page.get_by_role("cell", name=made.json()["name"])).to_be_visible()
        if is_admin:
            page.locator("#models details.edit summary").first.click()
        fits = page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        assert fits, f"/catalog scrolls sideways at 320 px (admin: {is_admin})"
