"""What the load generator keeps of each request: every time it was planned, sent, answered,
and both counts of its output tokens. Times are seconds on the run's monotonic clock
(`time.perf_counter()`), whose zero is the stage's start."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RequestRecord:
    index: int  # its place in the stage's schedule: resuming skips what is recorded
    planned: float  # when the schedule said to send it
    sent: float = 0.0  # when its first byte was written
    first: float | None = None  # the first chunk with output text
    end: float = 0.0  # the last byte, or the error
    chunks: list[float] = field(default_factory=list)  # arrival of each chunk with text
    status: int = 0  # HTTP status; 0 when no answer came
    error: str | None = None
    input_tokens: int | None = None  # as the dataset counted the prompt
    server_input_tokens: int | None = None  # usage.prompt_tokens
    server_output_tokens: int | None = None  # usage.completion_tokens
    client_output_tokens: int | None = None  # the client's tokenizer (or chunks) on the text
    segment: int = 0  # which uninterrupted stretch of the stage (0, then 1 after a resume)

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200

    def output_tokens(self) -> int | None:
        """The server's count when it gave one, else the client's (and the run says which)."""
        if self.server_output_tokens is not None:
            return self.server_output_tokens
        return self.client_output_tokens
