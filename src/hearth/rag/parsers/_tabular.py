"""Spreadsheets: Excel (.xlsx) with openpyxl and CSV/TSV with the csv module, as groups of
rows under their header row; for Excel, the sheet name is the section and its number the page.
"""

from __future__ import annotations

import csv
import io
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from datetime import date, datetime, time
from typing import Any

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException

from hearth.rag.parsers._blocks import BlockBuilder
from hearth.rag.parsers._charset import decode_text
from hearth.rag.parsers._ooxml import DAMAGED, check_package, invalid_package
from hearth.rag.parsers.base import ParsedDocument, ParseError, ParseLimits

NAME = "Excel workbook"
_SNIFF_CHARS = 16_384


def parse_xlsx(data: bytes, filename: str, *, limits: ParseLimits) -> ParsedDocument:
    check_package(data, NAME, ".xlsx", limits=limits)
    with warnings.catch_warnings():
        # openpyxl warns about each part it does not support (styles, extensions, drawings)
        # and drops it; none of them holds cell values.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"openpyxl\.")
        try:
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except (InvalidFileException, OSError, *DAMAGED) as exc:
            raise invalid_package(NAME) from exc
        try:
            builder = BlockBuilder(limits.max_text_chars)
            sheets = workbook.worksheets
            for number, sheet in enumerate(sheets, start=1):
                # The stored dimensions may claim a million empty rows or columns.
                sheet.reset_dimensions()  # type: ignore[union-attr]
                rows = sheet.iter_rows(values_only=True)
                builder.add_table(_texts(rows), page=number, headings=(sheet.title,))
            return builder.document(title=workbook.properties.title, pages=len(sheets))
        except (zipfile.BadZipFile, zlib.error, SyntaxError, NotImplementedError) as exc:
            # Sheets are read lazily, after load_workbook: damage may show only now.
            raise invalid_package(NAME) from exc
        finally:
            workbook.close()


def _texts(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[str]]:
    for row in rows:
        yield [_cell_text(value) for value in row]


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return format(value, ".15g")  # as Excel shows it: 0.1 + 0.2 is 0.3
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def parse_csv(data: bytes, filename: str, *, limits: ParseLimits) -> ParsedDocument:
    text = decode_text(data)
    if filename.lower().endswith(".tsv"):
        delimiter = "\t"
    else:
        delimiter = _sniff_delimiter(text[:_SNIFF_CHARS])
    builder = BlockBuilder(limits.max_text_chars)
    try:
        builder.add_table(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise ParseError(f"the CSV file is malformed ({exc})") from exc
    return builder.document()


def _sniff_delimiter(sample: str) -> str:
    # Cut at a line end so the sniffer does not see a half row.
    if (end := sample.rfind("\n")) > 0:
        sample = sample[:end]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","
