"""Token-aware chunking with the embedder's tokenizer, following the document's structure."""

from __future__ import annotations

import itertools

import pytest

from hearth.rag.chunking import chunk_blocks, document_text, embedding_input, minilm_tokenizer
from hearth.rag.parsers import Block

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank. "


def tokens(text: str) -> int:
    return len(minilm_tokenizer().encode(text, add_special_tokens=False).ids)


def test_small_blocks_of_one_section_are_packed_together() -> None:
    blocks = [
        Block("First paragraph.", page=1, headings=("Intro",)),
        Block("Second paragraph.", page=2, headings=("Intro",)),
    ]
    [chunk] = chunk_blocks(blocks, size=64, overlap=8)
    assert chunk.text == "First paragraph.\n\nSecond paragraph."
    assert (chunk.page, chunk.page_end, chunk.headings) == (1, 2, ("Intro",))
    assert document_text(blocks)[chunk.start : chunk.end] == chunk.text


def test_a_chunk_never_spans_two_sections() -> None:
    blocks = [
        Block("Alpha text.", headings=("A",)),
        Block("Beta text.", headings=("B",)),
        Block("More beta.", headings=("B",)),
    ]
    chunks = chunk_blocks(blocks, size=64, overlap=8)
    assert [c.headings for c in chunks] == [("A",), ("B",)]
    assert chunks[1].text == "Beta text.\n\nMore beta."


def test_paragraphs_stay_whole_while_they_fit() -> None:
    para = SENTENCE * 3  # ~45 tokens
    blocks = [Block(para.strip()) for _ in range(5)]
    chunks = chunk_blocks(blocks, size=100, overlap=10)
    assert all(c.tokens <= 100 for c in chunks)
    assert len(chunks) == 3  # two paragraphs fit in 100 tokens, not three
    for chunk in chunks:
        assert chunk.text.count(para.strip()) * tokens(para.strip()) <= 100


def test_long_block_is_cut_into_overlapping_windows_within_size() -> None:
    text = (SENTENCE * 40).strip()
    total = tokens(text)
    chunks = chunk_blocks([Block(text, page=3)], size=128, overlap=32)
    assert all(c.tokens <= 128 for c in chunks)
    assert all(tokens(c.text) <= 128 for c in chunks)
    # consecutive windows overlap, and together they cover the text
    assert all(b.start < a.end for a, b in itertools.pairwise(chunks))
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert sum(c.tokens for c in chunks) >= total
    assert all(c.page == 3 for c in chunks)


def test_offsets_point_into_the_document_text() -> None:
    blocks = [Block("Heading text " * 5), Block((SENTENCE * 30).strip()), Block("Tail.")]
    text = document_text(blocks)
    for chunk in chunk_blocks(blocks, size=60, overlap=10):
        assert text[chunk.start : chunk.end] == chunk.text


def test_default_size_fits_the_embedder_with_its_prefix() -> None:
    from hearth.config import Settings

    settings = Settings()
    chunks = chunk_blocks(
        [Block((SENTENCE * 60).strip(), headings=("A section title",))],
        size=settings.rag_chunk_tokens,
        overlap=settings.rag_chunk_overlap,
    )
    longest = max(tokens(embedding_input(c, "A document title")) for c in chunks)
    assert longest + 2 <= 256  # [CLS] and [SEP]: nothing is cut by all-MiniLM-L6-v2


def test_overlap_must_be_smaller_than_size() -> None:
    with pytest.raises(ValueError):
        chunk_blocks([Block("x")], size=10, overlap=10)
