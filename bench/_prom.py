"""A histogram read from a server's /metrics twice, for what it observed in between: how
many samples, their mean, and a median interpolated within its buckets.

The gateway's benchmark compares what Hearth says it added (`hearth_gateway_added_seconds`,
`hearth_gateway_overhead_seconds`) with what the client measured, over the same requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Histogram:
    """One histogram family, its children added up: cumulative counts by upper bound."""

    buckets: dict[float, float] = field(default_factory=dict)
    sum: float = 0.0
    count: float = 0.0

    def __sub__(self, earlier: Histogram) -> Histogram:
        return Histogram(
            {le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.sum - earlier.sum,
            self.count - earlier.count,
        )

    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    def quantile(self, q: float) -> float:
        """As PromQL's histogram_quantile: linear within the bucket the rank falls in."""
        if not self.count:
            return math.nan
        rank, lower, below = q * self.count, 0.0, 0.0
        for le in sorted(self.buckets):
            count = self.buckets[le]
            if count >= rank:
                if math.isinf(le):
                    return lower
                inside = count - below
                return lower + (le - lower) * ((rank - below) / inside if inside else 0.0)
            lower, below = le, count
        return lower


def histogram(text: str, name: str) -> Histogram:
    """The family `name` in a Prometheus text exposition, all its children added up."""
    found = Histogram()
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                le = float(sample.labels["le"])
                found.buckets[le] = found.buckets.get(le, 0.0) + sample.value
            elif sample.name == f"{name}_sum":
                found.sum += sample.value
            elif sample.name == f"{name}_count":
                found.count += sample.value
    return found
