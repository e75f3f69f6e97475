"""Hostile files (issue 16, item 8) on real packages built here: each parse is bounded in
what it unpacks, the elements it reads, its pages, memory and time, and a file can exhaust
only the child process parsing it, never this one (the worker or web process asking)."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF

from hearth.rag.parsers import ParseError, ParseLimits, parse_document, register_parser
from tests.rag._plugins import HostileParser
from tests.rag.test_parsers import make_docx, make_pptx, make_xlsx

MB = 2**20
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
MAX_GROWTH_MB = 300  # what parsing a hostile file may add to this process's peak memory


# --- files -------------------------------------------------------------------------------


def padded(
    package: bytes,
    member: str,
    filler: bytes,
    size: int,
    *,
    before: bytes | None = None,
    declared_size: int | None = None,
) -> bytes:
    """`package` with `size` bytes of `filler` inserted in `member` (before the first
    `before`, else at its end), deflated as they are written so that a gigabyte never sits
    in memory; `declared_size` then replaces the size the member's headers declare."""
    source = zipfile.ZipFile(io.BytesIO(package))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename != member:
                target.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
                continue
            head, mark, tail = data.partition(before) if before else (data, b"", b"")
            assert not before or mark, f"{before!r} is not in {member}"
            padding = zipfile.ZipInfo(member, info.date_time)
            padding.compress_type = zipfile.ZIP_DEFLATED
            with target.open(padding, "w") as out:
                out.write(head)
                for chunk in _repeated(filler, size):
                    out.write(chunk)
                out.write(mark + tail)
    data = buffer.getvalue()
    return data if declared_size is None else _declare_size(data, member, declared_size)


def _repeated(filler: bytes, size: int) -> Iterator[bytes]:
    chunk = filler * (MB // len(filler))
    for _ in range(size // len(chunk)):
        yield chunk


def _declare_size(package: bytes, member: str, size: int) -> bytes:
    """Overwrite the uncompressed size in the member's local header and central directory
    entry: the lie a ZIP bomb tells."""
    data = bytearray(package)
    archive = zipfile.ZipFile(io.BytesIO(package))
    struct.pack_into("<L", data, archive.getinfo(member).header_offset + 22, size)
    position = archive.start_dir
    while data[position : position + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = struct.unpack_from("<3H", data, position + 28)
        if data[position + 46 : position + 46 + name_length] == member.encode():
            struct.pack_into("<L", data, position + 24, size)
        position += 46 + name_length + extra_length + comment_length
    return bytes(data)


def make_pdf_of_pages(count: int) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for number in range(1, count + 1):
        pdf.add_page()
        pdf.cell(text=f"Page {number} is about owls.")
    return bytes(pdf.output())


MAKE = {"docx": make_docx, "pptx": make_pptx, "xlsx": make_xlsx}
# A part the format's library reads whole (openpyxl streams worksheets, not the workbook).
READ_WHOLE = {
    "docx": "word/document.xml",
    "pptx": "ppt/slides/slide1.xml",
    "xlsx": "xl/workbook.xml",
}
# Where millions of empty elements can go: the part, before what, which element.
EMPTY_ELEMENTS = {
    "docx": ("word/document.xml", b"<w:sectPr", b"<w:p/>"),
    "pptx": ("ppt/slides/slide1.xml", b"</p:txBody>", b"<a:p/>"),
    "xlsx": ("xl/worksheets/sheet1.xml", b"</sheetData>", b"<row/>"),
}


# --- memory of this process ----------------------------------------------------------------


class PeakMemory:
    """How much this process's peak resident memory grows inside the block, in MB. The peak
    (VmHWM) is reset on entry, so what earlier tests used does not hide the growth."""

    growth_mb = 0

    def __enter__(self) -> PeakMemory:
        try:
            _CLEAR_REFS.write_text("5")  # Linux 4.0 and later: peak := current
        except OSError:
            pytest.skip("the peak resident memory cannot be reset on this system")
        self._idle_kb = self._status("VmRSS")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.growth_mb = (self._status("VmHWM") - self._idle_kb) // 1024

    @staticmethod
    def _status(key: str) -> int:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
        raise AssertionError(f"no {key} in {_STATUS}")


def parse_measured(data: bytes, filename: str, **limits: Any) -> tuple[str | None, int]:
    """The ParseError reason (None if the file parsed) and the MB this process grew by."""
    with PeakMemory() as memory:
        try:
            parse_document(data, filename, limits=ParseLimits(**limits))
            reason = None
        except ParseError as exc:
            reason = exc.reason
    return reason, memory.growth_mb


# --- ZIP bombs -----------------------------------------------------------------------------


@pytest.mark.parametrize("extension", sorted(MAKE))
def test_a_part_that_inflates_past_its_declared_size_is_refused(extension: str) -> None:
    # A part declaring 1,000 bytes that inflates to a gigabyte: zipfile inflates it whole
    # before cutting it to the declared size, which took the server from 628 MB to 2.6 GB.
    member = READ_WHOLE[extension]
    bomb = padded(MAKE[extension](), member, b" ", 1024 * MB, declared_size=1000)
    info = zipfile.ZipFile(io.BytesIO(bomb)).getinfo(member)
    assert (info.file_size, len(bomb) < 8 * MB) == (1000, True)
    reason, growth_mb = parse_measured(bomb, f"bomb.{extension}")
    assert reason is not None and reason.startswith("the file is not a valid")
    assert growth_mb <= MAX_GROWTH_MB


@pytest.mark.parametrize("extension", sorted(MAKE))
def test_millions_of_empty_elements_are_refused_before_a_library_loads_them(
    extension: str,
) -> None:
    # 100 MB of empty paragraphs (rows, in Excel) in a file of a few hundred KB: python-docx
    # built a 2.75 GB tree of them and took 200 s.
    member, before, element = EMPTY_ELEMENTS[extension]
    bomb = padded(MAKE[extension](), member, element, 100 * MB, before=before)
    assert len(bomb) < 2 * MB
    reason, growth_mb = parse_measured(bomb, f"empty.{extension}")
    assert reason is not None
    assert reason.endswith(
        "has more than 2,000,000 elements (paragraphs, runs, table cells and the like)"
    )
    assert growth_mb <= MAX_GROWTH_MB


def test_element_limit_is_configurable_and_counts_what_the_file_holds() -> None:
    document = padded(make_docx(), "word/document.xml", b"<w:p/>", MB, before=b"<w:sectPr")
    with pytest.raises(ParseError, match="the Word document has more than 100,000 elements"):
        parse_document(document, "long.docx", limits=ParseLimits(max_elements=100_000))
    parsed = parse_document(document, "long.docx", limits=ParseLimits(max_elements=300_000))
    assert parsed.blocks == parse_document(make_docx(), "manual.docx").blocks


# --- pages ---------------------------------------------------------------------------------


def test_a_pdf_of_ten_thousand_pages_is_refused_before_its_text_is_read() -> None:
    pdf = make_pdf_of_pages(10_000)
    reason, growth_mb = parse_measured(pdf, "long.pdf")
    assert reason == "the PDF has more than 5,000 pages"
    assert growth_mb <= MAX_GROWTH_MB
    with pytest.raises(ParseError, match=r"^the PDF has more than 2 pages$"):
        parse_document(make_pdf_of_pages(3), "three.pdf", limits=ParseLimits(max_pdf_pages=2))
    document = parse_document(
        make_pdf_of_pages(3), "three.pdf", limits=ParseLimits(max_pdf_pages=3)
    )
    last = document.blocks[-1]
    assert (last.page, last.text) == (3, "Page 3 is about owls.")


# --- memory and time -----------------------------------------------------------------------


def test_a_real_file_past_the_memory_limit_fails_alone() -> None:
    # A million empty paragraphs: python-docx's tree of them needs about 150 MB.
    document = padded(make_docx(), "word/document.xml", b"<w:p/>", 6 * MB, before=b"<w:sectPr")
    limits = {"memory_mb": 64, "max_elements": 10**9}
    reason, growth_mb = parse_measured(document, "wide.docx", **limits)
    assert reason == "the file needs more memory to read than the limit of 64 MB allows"
    assert growth_mb <= MAX_GROWTH_MB
    assert parse_document(make_docx(), "manual.docx").blocks  # and parsing goes on


@pytest.fixture(scope="module")
def hostile() -> None:
    register_parser(HostileParser())


@pytest.mark.usefixtures("hostile")
@pytest.mark.parametrize(
    ("action", "limits", "reason"),
    [
        ("allocate", {"memory_mb": 64}, "the limit of 64 MB allows"),
        ("lxml", {"memory_mb": 64}, "the limit of 64 MB allows"),
        ("cpu", {}, "^reading the file took longer than 60 s$"),
        ("sleep", {"seconds": 1}, "^reading the file took longer than 1 s$"),
        ("oom-killer", {}, "^the file needs more memory to read than is available$"),
        ("abort", {}, r"could not be read \(it may be damaged, or need more memory than"),
        ("segfault", {}, r"could not be read \(it may be damaged, or need more memory than"),
    ],
)
def test_a_child_killed_or_out_of_memory_or_time_gives_a_reason(
    action: str, limits: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_document(action.encode(), "x.hostile", limits=ParseLimits(**limits))
    assert parse_document(b"nothing", "x.hostile").blocks[0].text == "survived nothing"


@pytest.mark.usefixtures("hostile")
def test_warnings_in_the_child_reach_this_process() -> None:
    with pytest.warns(UserWarning, match="a library's warning"):
        document = parse_document(b"warn", "x.hostile")
    assert document.blocks[0].text == "survived warn"


def test_parsers_that_cannot_reach_a_child_are_refused_at_registration() -> None:
    class Local(HostileParser):  # defined in a function: not importable, so not picklable
        extensions = (".local",)

    with pytest.raises(TypeError, match="cannot be pickled"):
        register_parser(Local())
