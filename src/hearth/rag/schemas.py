"""Request and response shapes of the documents API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CollectionCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)


class CollectionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    owner_id: str
    embedding_model: str
    created_at: datetime


class CollectionSummary(CollectionPublic):
    """A collection as the admin view lists it: with its size."""

    documents: int
    chunks: int


class GrantCreate(BaseModel):
    principal: str = Field(min_length=1, max_length=200, description="A user id, or `group:<id>`.")
    permission: Literal["read", "write"] = "read"


class GrantPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    principal: str = Field(description="A user id, or `group:<id>`.")
    permission: Literal["read", "write"]


class DocumentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    collection_id: uuid.UUID
    filename: str
    content_type: str | None
    title: str | None
    status: Literal["queued", "processing", "ready", "failed"]
    error: str | None
    pages: int | None
    chunks: int
    embedded_chunks: int
    embedded_tokens: int
    file_sha256: str
    created_at: datetime
    updated_at: datetime


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=8, ge=1, le=100)
    mode: Literal["hybrid", "vector", "text"] = "hybrid"
    explain: bool = Field(
        default=False,
        description="Admins only: give each result its rank on each side and its scores.",
    )


class Explanation(BaseModel):
    """Why a result ranked where it did."""

    vector_rank: int | None = Field(
        description="Its rank among the vector side's candidates; null: not among them."
    )
    text_rank: int | None = Field(
        description="Its rank among the full-text side's candidates; null: not among them."
    )
    similarity: float | None = Field(description="Cosine similarity to the query.")
    relevance: float | None = Field(description="BM25 relevance to the query.")
    score: float = Field(description="The fused score results are ordered by.")


class Citation(BaseModel):
    chunk_id: int
    document_id: uuid.UUID
    collection_id: uuid.UUID
    filename: str
    title: str | None
    page: int | None
    page_end: int | None
    headings: list[str]
    start: int
    end: int
    text: str
    score: float
    explain: Explanation | None = Field(default=None, exclude_if=lambda value: value is None)


class SearchResults(BaseModel):
    query: str
    mode: str
    results: list[Citation]


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=8000)
    model: str | None = Field(default=None, description="Chat model (default: the default).")
    k: int = Field(default=5, ge=1, le=50, description="Passages to retrieve.")
    stream: bool = True
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)


class Answer(BaseModel):
    model: str
    answer: str
    citations: list[Citation]
    usage: dict[str, int] | None = None
