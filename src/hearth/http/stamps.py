"""A request's start and end, passed between the layers that see them through the ASGI
scope's `state` (uvicorn gives each request its own copy of it).

The gateway reports the time it adds to a request from these two points. Neither is visible
from the route: the request's first bytes are read by the server's protocol before the app
is called, and its response's last byte is written after the route has returned its reply.
"""

from __future__ import annotations

# `time.perf_counter()` when the request's first bytes were parsed: set by
# `hearth.http.protocol.HttpProtocol` (what `hearth serve` runs), else by RequestMiddleware
# when the app is called (a server whose protocol does not stamp: tests, other servers).
RECEIVED = "hearth_received"

# A callable given `time.perf_counter()` once the response's last byte has been written
# (handed to the socket), or the request ended without one; RequestMiddleware calls it.
ON_END = "hearth_on_end"
