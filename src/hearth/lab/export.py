"""A run's requests as CSV: one row per request, its chunks' arrival times in one column."""

from __future__ import annotations

import csv
import io

from hearth.lab.records import RequestRecord


def records_csv(records: list[tuple[int, RequestRecord]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    fields = [
        "index", "segment", "planned", "sent", "first", "end", "status", "error",
        "input_tokens", "server_input_tokens", "server_output_tokens", "client_output_tokens",
    ]  # fmt: skip
    writer.writerow(["stage", *fields, "chunks"])
    for stage, record in records:
        row = [getattr(record, f) for f in fields]
        writer.writerow([stage, *row, " ".join(f"{t:.6f}" for t in record.chunks)])
    return out.getvalue()
