"""A cited document, opened: its file with the right content type (a PDF in the browser, an
HTML upload never rendered), and its passages with the cited one highlighted; for readers of
its collection only."""

from __future__ import annotations

import time
import uuid

import httpx

from tests._accounts import create_user, signed_in
from tests._server import Running
from tests.web.test_app import boiler_pdf


def _wait_ready(client: httpx.Client, document_id: str) -> None:
    deadline = time.monotonic() + 60
    while client.get(f"/api/documents/{document_id}").json()["status"] != "ready":
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_document_opens_at_its_cited_passage(hearth: Running) -> None:
    owner = create_user(hearth)
    alice, mallory = signed_in(hearth, owner), signed_in(hearth, create_user(hearth))
    collection = alice.post("/api/collections", json={"name": f"m-{uuid.uuid4().hex[:6]}"}).json()
    base = f"/api/collections/{collection['id']}/documents"
    manual = boiler_pdf()
    pdf = alice.post(base, files={"file": ("boiler.pdf", manual, "application/pdf")}).json()
    page = b"<html><script>alert(1)</script>Cleaning notes</html>"
    html = alice.post(base, files={"file": ("notes.html", page, "text/html")}).json()
    for doc in (pdf, html):
        _wait_ready(alice, doc["id"])

    got = alice.get(f"/api/documents/{pdf['id']}/file")
    assert got.status_code == 200 and got.content == manual
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"].startswith("inline")
    assert got.headers["x-content-type-options"] == "nosniff"
    risky = alice.get(f"/api/documents/{html['id']}/file")
    assert risky.headers["content-type"] == "application/octet-stream"
    assert risky.headers["content-disposition"].startswith("attachment")

    hits = alice.post(
        f"/api/collections/{collection['id']}/search", json={"query": "clean the filter", "k": 1}
    ).json()["results"]
    chunk = hits[0]
    assert chunk["document_id"] == pdf["id"] and chunk["page"] == 1
    view = alice.get(f"/documents/{pdf['id']}", params={"passage": chunk["chunk_id"]})
    assert view.status_code == 200
    assert f'id="passage-{chunk["chunk_id"]}" class="passage highlighted"' in view.text
    assert view.text.count("passage highlighted") == 1
    assert f"/api/documents/{pdf['id']}/file#page=1" in view.text

    # Someone who cannot read the collection sees neither the file nor the page.
    assert mallory.get(f"/api/documents/{pdf['id']}/file").status_code == 404
    assert mallory.get(f"/documents/{pdf['id']}").status_code == 404
