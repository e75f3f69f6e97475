"""The HTTP plumbing every Hearth server shares (`hearth serve`, `hearth engine`): the
httptools protocol, raw ASGI replies, the hot-route app, the one JSON error shape, and the
background task helper their services run on."""
