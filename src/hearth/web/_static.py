"""The site's own scripts, styles and icons. Templates link them under a versioned URL
(`url_for('static', path=...)` adds `?v=` and a hash of the file), which browsers may keep
for a year without asking again; any other URL of a file is revalidated each time (ETag,
304). Text is sent gzip-compressed to browsers that accept it, compressed once per file
version and kept in memory (the files are a few hundred kilobytes in all)."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

IMMUTABLE = "public, max-age=31536000, immutable"
_COMPRESSIBLE = ("text/", "application/javascript", "image/svg+xml", "application/json")
_MIN_BYTES = 512  # below this, gzip's own header costs about what it saves


class Assets(StaticFiles):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory)
        self.root = directory
        # (path, mtime, size) -> the content's hash; -> its gzip bytes.
        self._versions: dict[tuple[str, float, int], str] = {}
        self._gzipped: dict[tuple[str, float, int], bytes] = {}

    def version(self, path: str) -> str:
        """A short hash of the file's content, for its URL; "" for a missing file."""
        full = os.path.join(self.root, path)
        try:
            stat = os.stat(full)
        except OSError:
            return ""
        return self._version(full, (full, stat.st_mtime, stat.st_size))

    def _version(self, full: str, key: tuple[str, float, int]) -> str:
        found = self._versions.get(key)
        if found is None:
            with open(full, "rb") as file:
                found = self._versions[key] = hashlib.sha256(file.read()).hexdigest()[:16]
        return found

    def file_response(
        self,
        full_path: os.PathLike[str] | str,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        full = os.fspath(full_path)
        key = (full, stat_result.st_mtime, stat_result.st_size)
        asked = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("v", [""])[0]
        versioned = asked != "" and asked == self._version(full, key)
        response.headers["cache-control"] = IMMUTABLE if versioned else "no-cache"
        response.headers["vary"] = "accept-encoding"
        kind = response.headers.get("content-type", "")
        if (
            response.status_code != 200
            or scope["method"] != "GET"
            or stat_result.st_size < _MIN_BYTES
            or not kind.startswith(_COMPRESSIBLE)
            or "gzip" not in Headers(scope=scope).get("accept-encoding", "")
        ):
            return response
        body = self._gzipped.get(key)
        if body is None:
            with open(full, "rb") as file:
                body = self._gzipped[key] = gzip.compress(file.read(), 9, mtime=0)
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        # Weak: the same content, another encoding; a revalidation still gets its 304.
        headers["etag"] = "W/" + headers["etag"].removeprefix("W/")
        headers["content-encoding"] = "gzip"
        return Response(body, headers=headers)
