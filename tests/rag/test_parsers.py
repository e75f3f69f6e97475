"""Each parser on small real files built here with the writing side of the same libraries
(fpdf2 for PDF), and on damaged, encrypted, empty and oversized ones."""

from __future__ import annotations

import io
import random
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import docx
import openpyxl
import pptx
import pytest
from docx.oxml.ns import qn
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from lxml import etree

from hearth.rag.parsers import (
    Block,
    ParsedDocument,
    ParseError,
    ParseLimits,
    is_supported,
    parse_document,
    register_parser,
)
from tests.rag._plugins import NotesParser

# --- files -------------------------------------------------------------------------------


class PagedPDF(FPDF):
    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("helvetica", size=8)
        self.cell(0, 10, f"Page {self.page_no()} of {{nb}}", align="C")


def make_pdf(*, outline: bool = True, encrypt: bool = False) -> bytes:
    pdf = PagedPDF()
    pdf.set_title("Field Guide")
    pdf.add_page()
    pdf.set_font("helvetica", size=20)
    if outline:
        pdf.start_section("Introduction")
    pdf.cell(text="Introduction", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(0, 6, "The first paragraph talks about owls. " * 8)
    pdf.ln(6)
    pdf.multi_cell(0, 6, "Second paragraph about hawks and eagles.")
    pdf.add_page()
    pdf.set_font("helvetica", size=16)
    if outline:
        pdf.start_section("Details", level=1)
    pdf.cell(text="Details", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(0, 6, "Page two is about falcons.")
    if encrypt:
        pdf.set_encryption(owner_password="owner", user_password="reader")
    return bytes(pdf.output())


def make_docx() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Operations Manual"
    document.add_heading("Install", level=1)
    document.add_paragraph("Download the package first.")
    document.add_heading("On Linux", level=2)
    document.add_paragraph("Use the system package manager.")
    document.add_paragraph("apt works", style="List Bullet")
    document.add_paragraph("dnf works too", style="List Bullet")
    table = document.add_table(rows=3, cols=2)
    rows = [("Distro", "Command"), ("Debian", "apt"), ("Fedora", "dnf")]
    for row, values in zip(table.rows, rows, strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_heading("Usage", level=1)
    document.add_paragraph("Run it.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_pptx() -> bytes:
    presentation = pptx.Presentation()
    for title, body, notes in [
        ("Roadmap", "Ship parsing\nThen search", None),
        ("Risks", "Scanned PDFs have no text", "Mention OCR later."),
    ]:
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def make_xlsx(people: int = 3) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "People"
    sheet.append(["Name", "Age", "Joined"])
    for i in range(people):
        sheet.append([f"Person {i}", 30 + i, date(2024, 1, 1 + i % 28)])
    numbers = workbook.create_sheet("Numbers")
    numbers.append([1, 2.5, 0.1 + 0.2])
    numbers.append([3, None, True])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


HTML = b"""<!doctype html><html><head><meta charset="utf-8"><title>Team Handbook</title>
<style>p { color: red }</style><script>var secret = "tracking";</script></head>
<body><nav><a href="/">Home</a> <a href="/menu">Menu link</a></nav>
<h1>Handbook</h1><p>Welcome to the <b>team</b>.<br>Read this first.</p>
<h2>Holidays</h2><ul><li>Ask early<ul><li>two weeks ahead</li></ul></li><li>Use the form</li></ul>
<table><tr><th>Days</th><th>Who</th></tr><tr><td>25</td><td>everyone</td></tr></table>
<pre>make  holiday
    --days 3</pre><div hidden>invisible text</div>
<footer>Copyright footer</footer></body></html>"""

MARKDOWN = b"""---
layout: page
---
# Guide

Intro paragraph with **bold** and a [link](https://example.com).

## Setup

- first step
- second step
  - nested detail

```python
def main():
    return 1
```

### Details

| Option | Default |
|--------|---------|
| size   | 10      |

# Appendix

Last words.
"""

PYTHON = b'''"""A module."""

import os


def alpha():
    value = 1

    return value


class Beta:
    def method(self):
        return os.sep
'''

LATIN1 = (
    "Le café était très agréable.\nUne crème brûlée à l'hôtel.\n\n"
    "Deuxième paragraphe: garçon, élève, où.\n"
)


def texts(document: ParsedDocument) -> list[str]:
    return [block.text for block in document.blocks]


# --- formats -----------------------------------------------------------------------------


def test_pdf_pages_paragraphs_and_sections_from_the_outline() -> None:
    document = parse_document(make_pdf(), "guide.pdf")
    assert document.title == "Field Guide"
    assert document.pages == 2
    first, second, third = document.blocks
    assert first.text.startswith("The first paragraph talks about owls.")
    assert (first.page, first.headings) == (1, ("Introduction",))
    assert second == Block("Second paragraph about hawks and eagles.", 1, ("Introduction",))
    assert third == Block("Page two is about falcons.", 2, ("Introduction", "Details"))


def test_pdf_without_outline_takes_sections_from_larger_lines() -> None:
    document = parse_document(make_pdf(outline=False), "guide.pdf")
    assert [(b.page, b.headings) for b in document.blocks] == [
        (1, ("Introduction",)),
        (1, ("Introduction",)),
        (2, ("Introduction", "Details")),
    ]


def test_pdf_encrypted_or_without_text_layer() -> None:
    with pytest.raises(ParseError, match="encrypted"):
        parse_document(make_pdf(encrypt=True), "secret.pdf")
    scan = FPDF()
    for _ in range(2):
        scan.add_page()
        scan.rect(20, 20, 100, 150, style="F")
    with pytest.raises(ParseError, match="no text layer"):
        parse_document(bytes(scan.output()), "scan.pdf")


def test_pdf_from_several_threads_at_once() -> None:
    # PDFium is not thread-safe; the parser serialises calls into it.
    data = make_pdf()
    expected = parse_document(data, "guide.pdf")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: parse_document(data, "guide.pdf"), range(12)))
    assert all(result == expected for result in results)


def test_docx_heading_path_lists_and_tables() -> None:
    document = parse_document(make_docx(), "manual.docx")
    assert document.title == "Operations Manual"
    assert document.pages is None
    assert [(b.kind, b.headings, b.text) for b in document.blocks] == [
        ("text", ("Install",), "Download the package first."),
        ("text", ("Install", "On Linux"), "Use the system package manager."),
        ("list", ("Install", "On Linux"), "- apt works\n- dnf works too"),
        ("table", ("Install", "On Linux"), "Distro | Command\nDebian | apt\nFedora | dnf"),
        ("text", ("Usage",), "Run it."),
    ]


def test_docx_tracked_insertions_and_content_controls_are_read() -> None:
    document = docx.Document()
    paragraph = document.add_paragraph("Kept ")
    for wrapper, tag, text in [("w:ins", "w:t", "inserted"), ("w:del", "w:delText", "deleted")]:
        run = etree.SubElement(etree.SubElement(paragraph._p, qn(wrapper)), qn("w:r"))
        etree.SubElement(run, qn(tag)).text = text
    control = document.add_paragraph()._p  # a block-level content control around a paragraph
    control.tag = qn("w:sdt")
    content = etree.SubElement(control, qn("w:sdtContent"))
    run = etree.SubElement(etree.SubElement(content, qn("w:p")), qn("w:r"))
    etree.SubElement(run, qn("w:t")).text = "Inside a control"
    buffer = io.BytesIO()
    document.save(buffer)
    parsed = parse_document(buffer.getvalue(), "tracked.docx")
    assert texts(parsed) == ["Kept inserted", "Inside a control"]


def test_pptx_slides_are_pages_under_their_titles() -> None:
    document = parse_document(make_pptx(), "plan.pptx")
    assert (document.title, document.pages) == ("Roadmap", 2)
    assert [(b.page, b.headings, b.text) for b in document.blocks] == [
        (1, ("Roadmap",), "Ship parsing\nThen search"),
        (2, ("Risks",), "Scanned PDFs have no text"),
        (2, ("Risks",), "Mention OCR later."),
    ]


def test_xlsx_sheets_rows_grouped_under_the_header() -> None:
    document = parse_document(make_xlsx(people=60), "team.xlsx")
    assert document.pages == 2
    people = [b for b in document.blocks if b.headings == ("People",)]
    assert len(people) > 1 and all(b.page == 1 and b.kind == "table" for b in people)
    assert all(b.text.startswith("Name | Age | Joined\n") for b in people)
    assert "Person 0 | 30 | 2024-01-01" in people[0].text
    rows = [line for b in people for line in b.text.splitlines()[1:]]
    assert len(rows) == 60
    assert document.blocks[-1] == Block("1 | 2.5 | 0.3\n3 | | TRUE", 2, ("Numbers",), "table")


def test_xlsx_library_warnings_do_not_escape() -> None:
    # openpyxl warns about an extension it does not know (while reading the sheet, lazily)
    # and carries on; so does the parser, with pytest turning escaped warnings into errors.
    source = zipfile.ZipFile(io.BytesIO(make_xlsx()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                extension = b'<extLst><ext uri="{00000000-0000-0000-0000-000000000000}"/></extLst>'
                data = data.replace(b"</worksheet>", extension + b"</worksheet>")
            target.writestr(item, data)
    with pytest.warns(UserWarning, match="extension is not supported"):  # the library warns
        list(openpyxl.load_workbook(io.BytesIO(buffer.getvalue()), read_only=True).active.rows)
    document = parse_document(buffer.getvalue(), "extended.xlsx")
    assert document.blocks[0].text.startswith("Name | Age | Joined")


def test_csv_with_sniffed_delimiter_and_quoted_newlines() -> None:
    data = b'city;note\nParis;"two\nlines"\nLyon;ok\n'
    document = parse_document(data, "cities.csv")
    assert texts(document) == ["city | note\nParis | two lines\nLyon | ok"]
    assert document.blocks[0].page is None


def test_html_drops_chrome_and_builds_the_heading_path() -> None:
    document = parse_document(HTML, "handbook.html")
    assert document.title == "Team Handbook"
    assert [(b.kind, b.headings, b.text) for b in document.blocks] == [
        ("text", ("Handbook",), "Welcome to the team.\nRead this first."),
        ("list", ("Handbook", "Holidays"), "- Ask early\n  - two weeks ahead\n- Use the form"),
        ("table", ("Handbook", "Holidays"), "Days | Who\n25 | everyone"),
        ("code", ("Handbook", "Holidays"), "make  holiday\n    --days 3"),
    ]
    everything = " ".join(texts(document))
    for dropped in ("tracking", "Menu link", "footer", "invisible", "color"):
        assert dropped not in everything


def test_html_in_its_declared_legacy_encoding() -> None:
    page = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'
    page += "<p>Caf\u00e9 \u2013 20 \u20ac</p>"
    document = parse_document(page.encode("cp1252"), "menu.htm")
    assert texts(document) == ["Caf\u00e9 \u2013 20 \u20ac"]


def test_markdown_headings_lists_code_and_tables() -> None:
    document = parse_document(MARKDOWN, "guide.md")
    assert document.title == "Guide"
    assert [(b.kind, b.headings, b.text) for b in document.blocks] == [
        ("text", ("Guide",), "Intro paragraph with bold and a link."),
        ("list", ("Guide", "Setup"), "- first step\n- second step\n  - nested detail"),
        ("code", ("Guide", "Setup"), "def main():\n    return 1"),
        ("table", ("Guide", "Setup", "Details"), "Option | Default\nsize | 10"),
        ("text", ("Appendix",), "Last words."),
    ]


def test_source_code_is_cut_between_top_level_definitions() -> None:
    document = parse_document(PYTHON, "module.py")
    assert {b.kind for b in document.blocks} == {"code"}
    assert texts(document) == [
        '"""A module."""',
        "import os",
        "def alpha():\n    value = 1\n\n    return value",
        "class Beta:\n    def method(self):\n        return os.sep",
    ]


def test_latin1_text_is_decoded_and_split_into_paragraphs() -> None:
    document = parse_document(LATIN1.encode("latin-1"), "notes.txt")
    assert texts(document) == [
        "Le café était très agréable.\nUne crème brûlée à l'hôtel.",
        "Deuxième paragraphe: garçon, élève, où.",
    ]


def test_whitespace_and_control_characters_are_normalised() -> None:
    data = "  Tabs\tand   spaces\x00 here \r\n\r\n\r\n\r\nnext\u200b one\x07\n".encode()
    assert texts(parse_document(data, "messy.txt")) == ["Tabs and spaces here", "next one"]


# --- detection and failures --------------------------------------------------------------


def test_detection_by_extension_then_content_type() -> None:
    assert is_supported("report.PDF")
    assert is_supported("C:\\Users\\me\\notes.md")
    assert is_supported("README", "text/markdown; charset=utf-8")
    assert is_supported("Makefile", "text/x-makefile")  # any text/* reads as plain text
    assert not is_supported("setup.exe", "application/octet-stream")
    assert not is_supported("archive.zip")
    assert not is_supported(".bashrc")
    document = parse_document(b"# Title\n\nBody", "README", "text/markdown")
    assert document.title == "Title"


def test_unsupported_and_empty_files() -> None:
    with pytest.raises(ParseError, match=r"^unsupported file type \.exe$"):
        parse_document(b"MZ\x90\x00", "setup.exe")
    with pytest.raises(ParseError, match="unsupported file type application/zip"):
        parse_document(b"PK", "download", "application/zip")
    with pytest.raises(ParseError, match="the file is empty"):
        parse_document(b"", "empty.pdf")
    with pytest.raises(ParseError, match="contains no text"):
        parse_document(b" \n\n\t\n", "blank.txt")
    with pytest.raises(ParseError, match="contains no text"):
        parse_document(make_pptx_without_text(), "blank.pptx")


def make_pptx_without_text() -> bytes:
    presentation = pptx.Presentation()
    presentation.slides.add_slide(presentation.slide_layouts[6])  # blank layout
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


GARBAGE = random.Random(7).randbytes(2048)


@pytest.mark.parametrize(
    ("filename", "data", "reason"),
    [
        ("truncated.pdf", make_pdf()[:600], "not a valid PDF"),
        ("random.pdf", GARBAGE, "not a valid PDF"),
        ("truncated.docx", make_docx()[:3000], "not a valid Word document"),
        ("other.docx", make_xlsx(), "not a valid Word document"),
        ("truncated.pptx", make_pptx()[:3000], "not a valid PowerPoint presentation"),
        ("random.xlsx", GARBAGE, "not a valid Excel workbook"),
        ("other.xlsx", make_docx(), "not a valid Excel workbook"),
        ("random.csv", GARBAGE, "does not look like text"),
        ("random.html", GARBAGE, "does not look like text"),
        ("random.md", GARBAGE, "does not look like text"),
        ("random.txt", GARBAGE, "does not look like text"),
        ("random.py", b"\x00\x01\x02\x03binary", "does not look like text"),
    ],
)
def test_corrupt_files_fail_with_a_reason(filename: str, data: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_document(data, filename)


def test_encrypted_and_legacy_office_files() -> None:
    # Encrypted OOXML is an OLE compound file with an "EncryptedPackage" stream.
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    encrypted = ole + "EncryptedPackage".encode("utf-16-le") + bytes(512)
    with pytest.raises(ParseError, match="the Word document is encrypted"):
        parse_document(encrypted, "secret.docx")
    with pytest.raises(ParseError, match=r"old binary Office format; save it as \.xlsx"):
        parse_document(ole + bytes(512), "old.xlsx")


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("long.txt", b"word " * 500),
        ("long.pdf", make_pdf()),
        ("long.xlsx", make_xlsx(people=200)),
        ("long.md", b"# Big\n\n" + b"text " * 500),
    ],
)
def test_text_over_the_limit_fails(filename: str, data: bytes) -> None:
    with pytest.raises(ParseError, match="exceeds the limit of 300 characters"):
        parse_document(data, filename, limits=ParseLimits(max_text_chars=300))


# --- extension -----------------------------------------------------------------------------


def test_registered_parsers_get_the_same_guarantees() -> None:
    register_parser(NotesParser())  # in a module of its own: the child process imports it
    assert is_supported("x.notes") and is_supported("x", "application/x-notes")
    document = parse_document(b"one\n\ntwo", "day.notes")
    assert texts(document) == ["one", "two"]  # the empty block is dropped
    with pytest.raises(
        ParseError, match=r"^the notes file could not be read \(it may be damaged\)$"
    ):
        parse_document(b"!", "bad.notes")
    with pytest.raises(ParseError, match="contains no text"):
        parse_document(b"\n", "blank.notes")
