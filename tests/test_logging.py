"""Logs are JSON lines with the request id, and never carry secrets."""

from __future__ import annotations

import logging

import orjson

from hearth.config import Settings
from hearth.observability.logging import JsonFormatter, request_id


def test_json_line_carries_request_id_and_extras() -> None:
    record = logging.LogRecord("hearth.test", logging.INFO, __file__, 1, "served %s", ("x",), None)
    record.status = 200
    token = request_id.set("rid-1")
    try:
        line = JsonFormatter().format(record)
    finally:
        request_id.reset(token)
    entry = orjson.loads(line)
    assert entry["msg"] == "served x" and entry["request_id"] == "rid-1"
    assert entry["status"] == 200 and entry["level"] == "info"


def test_settings_never_print_the_database_password() -> None:
    settings = Settings(database_url="postgresql://hearth:s3cret-pw@db/hearth")
    assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in str(settings.model_dump())
