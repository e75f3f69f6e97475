"""Fusion functions for the retrieval-quality study (bench/retrieval_quality.py --fusions):
each takes one query's two candidate lists, best first, and returns chunk ids, best first.

A list holds (chunk id, score): the vector side's cosine similarity, the text side's BM25
relevance. The families are the ones the literature compares (Bruch, Gai and Ingber,
"An Analysis of Fusion Functions for Hybrid Retrieval", 2023): reciprocal-rank fusion,
plain and weighted, and convex combinations of normalised scores.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

Side = list[tuple[int, float]]  # (chunk id, score), best first
Fusion = Callable[[Side, Side], list[int]]


def rrf(k: float = 60, depth: int = 100, vector_weight: float = 0.5) -> Fusion:
    """Σ weight / (k + rank) over the sides' first `depth` candidates."""

    def fuse(vec: Side, txt: Side) -> list[int]:
        scores: dict[int, float] = {}
        for weight, side in ((vector_weight, vec), (1 - vector_weight, txt)):
            for rank, (chunk, _) in enumerate(side[:depth], 1):
                scores[chunk] = scores.get(chunk, 0.0) + weight / (k + rank)
        return sorted(scores, key=lambda c: (-scores[c], c))

    return fuse


def _minmax(side: Side, floor: float | None) -> dict[int, float]:
    if not side:
        return {}
    top = side[0][1]
    low = side[-1][1] if floor is None else floor
    span = top - low
    return {c: (s - low) / span if span > 0 else 1.0 for c, s in side}


def _zscore(side: Side, _floor: float | None) -> dict[int, float]:
    if len(side) < 2:
        return {c: 1.0 for c, _ in side}
    values = [s for _, s in side]
    sd = statistics.pstdev(values) or 1.0
    # in standard deviations above the list's lowest, which a missing candidate scores
    low = min(values)
    return {c: (s - low) / sd for c, s in side}


NORMS = {"minmax": _minmax, "zscore": _zscore}


def convex(
    alpha: float = 0.5, norm: str = "minmax", depth: int = 100, theoretical: bool = False
) -> Fusion:
    """alpha · vector + (1 - alpha) · text, each normalised over its first `depth` candidates
    (min-max, or from the theoretical minimum: cosine -1, BM25 0); a candidate missing on a
    side scores that side's minimum."""
    normalise = NORMS[norm]

    def fuse(vec: Side, txt: Side) -> list[int]:
        v = normalise(vec[:depth], -1.0 if theoretical else None)
        t = normalise(txt[:depth], 0.0 if theoretical else None)
        scores = {
            c: alpha * v.get(c, 0.0) + (1 - alpha) * t.get(c, 0.0) for c in v.keys() | t.keys()
        }
        return sorted(scores, key=lambda c: (-scores[c], c))

    return fuse


def candidates() -> dict[str, Fusion]:
    """Every fusion the study measures, by name."""
    out: dict[str, Fusion] = {}
    for depth in (20, 30, 50, 100, 200):
        for k in (10, 30, 60):
            out[f"rrf k={k} depth={depth}"] = rrf(k, depth)
        for w in (0.6, 0.7):
            out[f"rrf k=60 depth={depth} wv={w}"] = rrf(60, depth, w)
    for depth in (20, 50, 100, 200):
        for alpha in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
            for norm in NORMS:
                out[f"convex {norm} a={alpha} depth={depth}"] = convex(alpha, norm, depth)
            out[f"convex tmm a={alpha} depth={depth}"] = convex(alpha, "minmax", depth, True)
    return out
