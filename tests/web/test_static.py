"""The site's own files: linked under versioned URLs that browsers keep, revalidated under
any other, and gzip-compressed for browsers that accept it."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import httpx

from tests._server import Running

STATIC = Path(__file__).parents[2] / "src" / "hearth" / "web" / "static"


def test_pages_link_versioned_files_that_are_kept_and_compressed(hearth: Running) -> None:
    page = httpx.get(f"{hearth.url}/login", follow_redirects=True).text
    link = re.search(r'href="http://[^/"]+(/static/app\.css\?v=([0-9a-f]{16}))"', page)
    assert link, re.findall(r"<link[^>]+>", page)
    url, version = link.groups()
    raw = httpx.get(f"{hearth.url}{url}", headers={"accept-encoding": "identity"})
    assert raw.status_code == 200 and raw.content == (STATIC / "app.css").read_bytes()
    assert raw.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "content-encoding" not in raw.headers
    # Compressed for a browser that accepts gzip: fewer bytes, the same file.
    with httpx.Client() as client:
        request = client.build_request("GET", f"{hearth.url}{url}")
        zipped = client.send(request, stream=True)
        body = zipped.read()  # httpx decodes it; the bytes on the wire were gzip
        assert zipped.headers["content-encoding"] == "gzip"
        assert int(zipped.headers["content-length"]) < len(raw.content) // 2
        assert body == raw.content and zipped.headers["vary"] == "accept-encoding"
        assert gzip.decompress(gzip.compress(body)) == body
    # Revalidation of the compressed copy: 304.
    again = httpx.get(f"{hearth.url}{url}", headers={"if-none-match": zipped.headers["etag"]})
    assert again.status_code == 304
    # Not the current version (or none): the browser must ask again each time.
    for other in ("/static/app.css", "/static/app.css?v=0000000000000000"):
        stale = httpx.get(f"{hearth.url}{other}")
        assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
    assert version != "0000000000000000"
    # Modules the page's script imports are fetched unversioned, so never kept stale.
    script = httpx.get(f"{hearth.url}/static/collections.js")
    assert script.headers["cache-control"] == "no-cache"
    assert httpx.get(f"{hearth.url}/static/missing.js").status_code == 404
