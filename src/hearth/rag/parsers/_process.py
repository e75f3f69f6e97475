"""Each parse runs in a child process of its own, under limits on its address space and CPU
time and a wall-clock deadline, so a hostile file (a ZIP bomb, millions of empty paragraphs,
a PDF that loops) can kill only its own parse, never the worker or web process that asked.

Children come from multiprocessing's fork server: a clean process, started on the first
parse, that holds no event loop, database connection or thread of ours, and has already
imported the parsers' libraries. Forking it costs milliseconds where a fresh interpreter
would cost a second of imports; each child is used once, so the memory a parse took is
given back when it exits.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import multiprocessing
import os
import pickle
import signal
import traceback
import warnings
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from hearth.rag.parsers.base import (
    ParsedDocument,
    ParseError,
    ParseLimits,
    Parser,
    memory_limit_error,
    time_limit_error,
)

try:
    import resource
except ImportError:  # Windows: the deadline still holds, the rlimits do not exist
    resource = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

# Imported once in the fork server, so that no child pays for them. Each child also runs the
# parent's main script again, as multiprocessing does to unpickle what it defines (Python
# 3.11's fork server fails to do that once for all); the `hearth` script only imports
# hearth.cli, which is therefore preloaded too.
_PRELOAD = [
    "hearth.cli",
    "hearth.rag.parsers._process",
    "hearth.rag.parsers._docx",
    "hearth.rag.parsers._pptx",
    "hearth.rag.parsers._tabular",
    "hearth.rag.parsers._pdf",
    "hearth.rag.parsers._html",
    "hearth.rag.parsers._markdown",
    "hearth.rag.parsers._text",
]
_EXIT_GRACE = 5.0  # seconds a child that sent its outcome (or closed its pipe) may take to exit
_LXML_NO_MEMORY = 2  # libxml2's XML_ERR_NO_MEMORY, reported by lxml as a syntax error


class _DeadlinePassed(Exception):
    """The child did not answer in time."""


@dataclass(frozen=True)
class _Warning:
    category: type[Warning]
    message: str
    filename: str
    lineno: int


@dataclass(frozen=True)
class _Outcome:
    """What a child sends back: a document, or the reason it has none."""

    document: ParsedDocument | None = None
    reason: str | None = None  # a ParseError's
    failure: str | None = None  # the traceback of any other exception
    warnings: list[_Warning] = field(default_factory=list)
    peak_mb: int = 0  # the child's peak resident memory, to tune the limit by


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def parse_in_child(
    parser: Parser, data: bytes, filename: str, limits: ParseLimits
) -> ParsedDocument:
    """`parser.parse` in a child process under `limits`; raises ParseError, and nothing else,
    when the file cannot be used, also when the child runs out of memory or time or dies."""
    context = _context()
    ours, theirs = context.Pipe()
    child = context.Process(
        target=_child_main, args=(theirs, parser, filename, limits), name="hearth-parse"
    )
    child.daemon = True  # never outlives the process that asked
    with ours:
        try:
            child.start()  # failing to start is no fault of the file: not a ParseError
        finally:
            theirs.close()  # the child has its own copy: its death reads as end of file here
        try:
            outcome = _exchange(ours, data, limits.seconds)
        except _DeadlinePassed:
            child.kill()
            raise time_limit_error(limits.seconds) from None
        finally:
            exitcode = _reap(child)
    if outcome is None:
        raise _death_reason(parser, filename, exitcode, limits)
    log.debug("parsed %r in a child process of peak memory %d MB", filename, outcome.peak_mb)
    for caught in outcome.warnings:  # as if the parse had run here, for this process's filters
        warnings.warn_explicit(caught.message, caught.category, caught.filename, caught.lineno)
    if outcome.failure is not None:
        # Libraries fail on damaged files in their own ways (zlib, XML, struct errors...);
        # the user gets a reason, the log keeps the traceback.
        log.warning("the %s parser failed on %r:\n%s", parser.name, filename, outcome.failure)
        raise ParseError(f"the {parser.name} could not be read (it may be damaged)")
    if outcome.document is None:
        raise ParseError(outcome.reason or "the file could not be read")
    return outcome.document


def _exchange(conn: Connection, data: bytes, seconds: float) -> _Outcome | None:
    """Send the file and wait for the outcome: None if the child died first, _DeadlinePassed
    if the deadline passes."""
    try:
        conn.send_bytes(data)
        answered = conn.poll(seconds)  # also true at end of file: the child died
        outcome = conn.recv() if answered else None
    except (EOFError, OSError, pickle.UnpicklingError):
        return None
    if not answered:
        raise _DeadlinePassed
    return outcome if isinstance(outcome, _Outcome) else None


def _reap(child: multiprocessing.process.BaseProcess) -> int | None:
    """Wait for the child to exit (kill it if it lingers); its exit code."""
    child.join(_EXIT_GRACE)
    if child.exitcode is None:
        child.kill()
        child.join()
    exitcode = child.exitcode
    child.close()
    return exitcode


def _death_reason(
    parser: Parser, filename: str, exitcode: int | None, limits: ParseLimits
) -> ParseError:
    if exitcode == -signal.SIGXCPU:  # the CPU-time limit
        return time_limit_error(limits.seconds)
    log.warning("the %s parser died on %r (exit code %s)", parser.name, filename, exitcode)
    if exitcode == -signal.SIGKILL:  # not by us: the kernel's OOM killer (a container's limit)
        return ParseError("the file needs more memory to read than is available")
    # Libraries written in C or C++ (PDFium) may abort when an allocation fails.
    return ParseError(
        f"the {parser.name} could not be read (it may be damaged, or need more memory "
        f"than the limit of {limits.memory_mb:,} MB allows)"
    )


def _child_main(conn: Connection, parser: Parser, filename: str, limits: ParseLimits) -> None:
    # A Ctrl-C reaches the whole process group; the parent decides when a parse stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_resources(limits)
    data = conn.recv_bytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the asking process's filters decide
        outcome = _run(parser, data, filename, limits)
    del data
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 if resource else 0
    outcome = dataclasses.replace(outcome, peak_mb=peak_mb)
    seen = [_Warning(w.category, str(w.message), w.filename, w.lineno) for w in caught]
    try:
        conn.send(dataclasses.replace(outcome, warnings=seen))
    except (pickle.PicklingError, TypeError, AttributeError):  # a warning class of a closure
        conn.send(outcome)
    conn.close()


def _limit_resources(limits: ParseLimits) -> None:
    """Bound this process: its address space to what it holds now plus `memory_mb` (the file
    is received after, so it counts), its CPU time to the deadline, and no core dumps."""
    if resource is None:
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    seconds = max(1, math.ceil(limits.seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    try:
        with open("/proc/self/statm") as statm:  # Linux; elsewhere RLIMIT_AS is not enforced
            held = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return
    address_space = held + limits.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))


def _run(parser: Parser, data: bytes, filename: str, limits: ParseLimits) -> _Outcome:
    try:
        return _Outcome(document=parser.parse(data, filename, limits=limits))
    except Exception as exc:  # MemoryError included
        if _out_of_memory(exc):
            return _Outcome(reason=memory_limit_error(limits.memory_mb).reason)
        if isinstance(exc, ParseError):
            return _Outcome(reason=exc.reason)
        return _Outcome(failure=traceback.format_exc())


def _out_of_memory(exc: BaseException) -> bool:
    """Whether a failure came from an allocation the address-space limit refused: a
    MemoryError, or libxml2's out-of-memory error, which lxml raises as a syntax error (and
    the Office parsers then report as a damaged file)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError):
            return True
        lxml = type(current).__module__.startswith("lxml.")
        if lxml and getattr(current, "code", None) == _LXML_NO_MEMORY:
            return True
        current = current.__cause__ or current.__context__
    return False
