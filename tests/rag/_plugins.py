"""Parsers the tests register as plugins would be: parses run in a child process, which
imports this module to unpickle them."""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import time
import warnings

from hearth.rag.parsers import Block, ParsedDocument, ParseLimits


class NotesParser:
    name = "notes file"
    extensions = (".notes",)
    mime_types = ("application/x-notes",)

    def parse(self, data: bytes, filename: str, *, limits: ParseLimits) -> ParsedDocument:
        if data.startswith(b"!"):
            raise RuntimeError("library blew up")
        lines = data.decode().splitlines()
        return ParsedDocument([Block(line, headings=("Notes",)) for line in lines], title=filename)


class HostileParser:
    """Does to its process what a library driven by a hostile file might; the file names it."""

    name = "hostile file"
    extensions = (".hostile",)
    mime_types = ()

    def parse(self, data: bytes, filename: str, *, limits: ParseLimits) -> ParsedDocument:
        action = data.decode()
        if action == "allocate":  # past the address-space limit
            bytearray(2 * limits.memory_mb * 2**20)
        elif action == "lxml":  # libxml2 out of memory: lxml raises a syntax error
            from lxml import etree

            etree.fromstring(b"<r>" + b"<p/>" * (limits.memory_mb * 2**20 // 8) + b"</r>")
        elif action == "cpu":  # the CPU-time limit: the kernel sends SIGXCPU
            resource.setrlimit(resource.RLIMIT_CPU, (1, resource.getrlimit(resource.RLIMIT_CPU)[1]))
            while True:
                pass
        elif action == "sleep":  # no CPU used: only the deadline ends it
            time.sleep(3600)
        elif action == "abort":  # what C and C++ libraries do when an allocation fails
            os.abort()
        elif action == "segfault":
            ctypes.string_at(0)
        elif action == "oom-killer":  # a container's memory limit
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "warn":
            warnings.warn("a library's warning", UserWarning, stacklevel=1)
        return ParsedDocument([Block(f"survived {action}")])
