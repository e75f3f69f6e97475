"""PowerPoint (.pptx) with python-pptx: one block per text frame, table or group of shapes,
in reading order, under the slide's title; speaker notes after the slide's shapes."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import pptx
from pptx.exc import PackageNotFoundError
from pptx.shapes.base import BaseShape
from pptx.shapes.group import GroupShape

from hearth.rag.parsers._blocks import BlockBuilder, clean_line
from hearth.rag.parsers._ooxml import DAMAGED, check_package, invalid_package
from hearth.rag.parsers.base import ParsedDocument, ParseLimits

NAME = "PowerPoint presentation"


def parse_pptx(data: bytes, filename: str, *, limits: ParseLimits) -> ParsedDocument:
    check_package(data, NAME, ".pptx", limits=limits)
    try:
        presentation = pptx.Presentation(io.BytesIO(data))
    except (PackageNotFoundError, *DAMAGED) as exc:  # not a PowerPoint package
        raise invalid_package(NAME) from exc
    builder = BlockBuilder(limits.max_text_chars)
    first_title = None
    slides = list(presentation.slides)
    for number, slide in enumerate(slides, start=1):
        title_shape = slide.shapes.title
        title = clean_line(title_shape.text_frame.text) if title_shape is not None else ""
        first_title = first_title or title
        headings = (title,) if title else ()
        for shape in _reading_order(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            if shape.has_table:
                rows = ([cell.text for cell in row.cells] for row in shape.table.rows)
                builder.add_table(rows, page=number, headings=headings)
            else:
                builder.add("\n".join(_texts(shape)), page=number, headings=headings)
        if slide.has_notes_slide and (notes := slide.notes_slide.notes_text_frame) is not None:
            builder.add(notes.text, page=number, headings=headings)
    title = presentation.core_properties.title or first_title
    return builder.document(title=title, pages=len(slides))


def _reading_order(shapes: Iterable[BaseShape]) -> list[BaseShape]:
    """Top to bottom, then left to right: the order shapes are stored in is their z-order."""
    return sorted(shapes, key=lambda shape: (shape.top or 0, shape.left or 0))


def _texts(shape: BaseShape) -> Iterator[str]:
    if isinstance(shape, GroupShape):
        for member in _reading_order(shape.shapes):
            yield from _texts(member)
    elif shape.has_text_frame:
        yield shape.text_frame.text  # type: ignore[attr-defined]
    elif shape.has_table:
        for row in shape.table.rows:  # type: ignore[attr-defined]
            yield " | ".join(cell.text for cell in row.cells)
