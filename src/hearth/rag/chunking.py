"""Token-aware chunking with the embedder's own tokenizer.

Chunks follow the document's structure: a chunk never spans two sections (heading paths),
paragraphs (blocks) are packed whole while they fit, and only a block longer than a chunk
is cut, at token boundaries, into overlapping windows. Each chunk keeps where it came from
(page, section path, character offsets into the document's text) for citations.

The default size leaves room under all-MiniLM-L6-v2's 256 word pieces for the special
tokens and the title/section prefix embedded with each chunk: longer inputs would be cut
silently by the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from hearth.rag.parsers import Block

BLOCK_SEPARATOR = "\n\n"
PREFIX_TOKENS = 48  # title and section path, embedded in front of the chunk text


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # character offsets into the document text (blocks joined by a blank line)
    end: int
    page: int | None
    page_end: int | None
    headings: tuple[str, ...]
    tokens: int

    def metadata(self) -> dict[str, Any]:
        return {
            "page": self.page,
            "page_end": self.page_end,
            "headings": list(self.headings),
            "start": self.start,
            "end": self.end,
            "tokens": self.tokens,
        }


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    tokens: int
    page: int | None
    headings: tuple[str, ...]


@cache
def minilm_tokenizer() -> Any:
    """all-MiniLM-L6-v2's WordPiece tokenizer, without truncation or padding."""
    from tokenizers import Tokenizer

    from hearth.engines._minilm import reference_model_dir

    tokenizer = Tokenizer.from_file(str(reference_model_dir() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def document_text(blocks: Sequence[Block]) -> str:
    return BLOCK_SEPARATOR.join(block.text for block in blocks)


def chunk_blocks(
    blocks: Sequence[Block], *, size: int = 192, overlap: int = 32, tokenizer: Any = None
) -> list[Chunk]:
    """Split a parsed document into chunks of at most `size` tokens."""
    if overlap >= size:
        raise ValueError("chunk overlap must be smaller than the chunk size")
    tokenizer = tokenizer or minilm_tokenizer()
    text = document_text(blocks)
    encodings = tokenizer.encode_batch([b.text for b in blocks], add_special_tokens=False)
    pieces: list[_Piece] = []
    offset = 0
    for block, encoding in zip(blocks, encodings, strict=True):
        pieces += _pieces(block, encoding.offsets, offset, size, overlap)
        offset += len(block.text) + len(BLOCK_SEPARATOR)
    return [_chunk(text, group) for group in _pack(pieces, size)]


def _pieces(
    block: Block, offsets: list[tuple[int, int]], base: int, size: int, overlap: int
) -> list[_Piece]:
    """The block whole if it fits, else windows of `size` tokens overlapping by `overlap`."""
    if len(offsets) <= size:
        return [_Piece(base, base + len(block.text), len(offsets), block.page, block.headings)]
    windows = []
    first, count = 0, len(offsets)
    while True:
        last = min(first + size, count)  # exclusive
        start = 0 if first == 0 else offsets[first][0]
        end = len(block.text) if last == count else offsets[last - 1][1]
        windows.append(_Piece(base + start, base + end, last - first, block.page, block.headings))
        if last == count:
            return windows
        first += size - overlap


def _pack(pieces: list[_Piece], size: int) -> list[list[_Piece]]:
    groups: list[list[_Piece]] = []
    current: list[_Piece] = []
    tokens = 0
    for piece in pieces:
        new_section = bool(current) and piece.headings != current[0].headings
        # Overlapping windows of one long block overlap each other; never pack them.
        overlapping = bool(current) and piece.start < current[-1].end
        if current and (new_section or overlapping or tokens + piece.tokens > size):
            groups.append(current)
            current, tokens = [], 0
        current.append(piece)
        tokens += piece.tokens
    if current:
        groups.append(current)
    return groups


def _chunk(text: str, group: list[_Piece]) -> Chunk:
    start, end = group[0].start, group[-1].end
    pages = [p.page for p in group if p.page is not None]
    return Chunk(
        text=text[start:end],
        start=start,
        end=end,
        page=pages[0] if pages else None,
        page_end=pages[-1] if pages else None,
        headings=group[0].headings,
        tokens=sum(p.tokens for p in group),
    )


def embedding_input(chunk: Chunk, title: str | None) -> str:
    """What is embedded for a chunk: its title and section path in front of its text, so a
    passage that never names its subject is still found by it."""
    context = " > ".join(part for part in (title, *chunk.headings) if part)
    if not context:
        return chunk.text
    words = context.split()
    if len(words) > PREFIX_TOKENS // 2:  # roughly PREFIX_TOKENS word pieces
        context = " ".join(words[: PREFIX_TOKENS // 2])
    return f"{context}\n{chunk.text}"
