"""Rate, concurrency and spend limits per API key and per team, enforced across replicas.

A request is checked against the limits of several subjects at once (its key's and its
team's) and admitted only if all pass; a refusal charges no one. Admitting costs one Redis
round trip and settling one more: each is a single Lua script (`_redis_limits.py`), so the
counters are shared and exact however many replicas run, instead of each replica counting on
its own and the limits multiplying with the replica count. `LocalLimiter` keeps the same
semantics in memory for the single process of `hearth up`.

Requests and tokens per minute use GCRA (the generic cell rate algorithm, a token bucket
kept as one timestamp): one key per limit, exact, and the wait until a request would pass
falls out of the arithmetic, which is what `Retry-After` needs. Its burst is one full
window, as OpenAI's limits allow, and it refills continuously: over any span t it admits at
most limit * (1 + t / window), never the two full windows at once that fixed windows allow
around their edge. A sliding log would be exact too, but stores an entry per
request (per token, for token limits). Token counts are estimated at admission and
corrected when the request settles. Concurrency slots are leases (a sorted set of admission
ids scored by expiry), short and renewed by the replica holding them while the request
runs, so a replica that dies mid-request leaks its slots for one lease, seconds. Budgets
are a sum of cost per calendar period (UTC), checked at admission and charged at
settlement: requests already running when the budget runs out may overshoot it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hearth.errors import RateLimited
from hearth.gateway._redis_limits import ADMIT_LUA, RENEW_LUA, SETTLE_LUA
from hearth.gateway._resp import RespClient, Script
from hearth.http.background import BackgroundTask

log = logging.getLogger(__name__)

BudgetPeriod = Literal["day", "week", "month"]
LimitName = Literal["requests_per_minute", "tokens_per_minute", "max_concurrent", "budget"]

DEFAULT_WINDOW = 60.0  # seconds; "per minute". Tests shorten it.
DEFAULT_LEASE = 15.0  # seconds a concurrency slot lives without being renewed or settled
# In one process no replica can die alone: a lease only guards against a missed settle.
LOCAL_LEASE = 600.0

# Float rounding must not refuse the last request of a burst (seconds; the Lua uses 1 µs).
_SLACK = 1e-6
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Limits:
    """One subject's limits; None means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None
    budget: float | None = None  # in the currency of the model prices
    budget_period: BudgetPeriod | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute", "max_concurrent"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, or None for unlimited")
        if self.budget is not None and self.budget < 0:
            raise ValueError("budget must not be negative")
        if (self.budget is None) != (self.budget_period is None):
            raise ValueError("budget and budget_period go together")

    @property
    def unlimited(self) -> bool:
        return (
            self.requests_per_minute is None
            and self.tokens_per_minute is None
            and self.max_concurrent is None
            and self.budget is None
        )

    @property
    def needs_settling(self) -> bool:
        """Whether the end of a request changes anything (requests/min alone does not)."""
        return (
            self.tokens_per_minute is not None
            or self.max_concurrent is not None
            or self.budget is not None
        )


@dataclass(eq=False)
class Admission:
    """A request let through; pass it to `Limiter.settle` when the request ends."""

    id: str
    subjects: tuple[tuple[str, Limits], ...]
    estimated_tokens: int
    settled: bool = field(default=False, init=False)


@dataclass(frozen=True)
class _Refusal:
    index: int  # into Admission.subjects
    limit: LimitName
    wait: float  # seconds


class Limiter(ABC):
    """Admits requests against limits and settles them when they end."""

    async def admit(
        self, subjects: Sequence[tuple[str, Limits]], *, estimated_tokens: int
    ) -> Admission:
        """Admit one request against every subject's limits at once.

        Raises `RateLimited` (with the seconds until it would pass) if any limit is over;
        then nothing is charged to any subject.
        """
        admission = Admission(uuid.uuid4().hex, tuple(subjects), max(estimated_tokens, 0))
        # Unlimited subjects cost nothing: no round trip at all.
        if not all(limits.unlimited for _, limits in admission.subjects):
            refusal = await self._admit(admission)
            if refusal is not None:
                raise _rate_limited(admission, refusal)
        return admission

    async def settle(self, admission: Admission, *, tokens: int, cost: float) -> None:
        """End a request: free its concurrency slot, replace the estimated token count with
        the actual one, and charge its cost to the budgets. A second call does nothing."""
        if not (math.isfinite(cost) and cost >= 0):
            raise ValueError(f"cost must be a finite, non-negative amount, not {cost!r}")
        if admission.settled:
            return
        # Marked before the round trip: if it fails, the lease frees the slot in time,
        # whereas settling twice would refund tokens twice.
        admission.settled = True
        if any(limits.needs_settling for _, limits in admission.subjects):
            await self._settle(admission, max(tokens, 0) - admission.estimated_tokens, cost)

    async def close(self) -> None:
        """Release connections (Redis); the in-process limiter holds none."""

    # True where the counters live in a store every replica shares (Redis).
    shared = False

    async def ping(self) -> bool:
        """Whether the shared store answers (the in-process limiter always does)."""
        return True

    @abstractmethod
    async def _admit(self, admission: Admission) -> _Refusal | None: ...

    @abstractmethod
    async def _settle(self, admission: Admission, token_delta: int, cost: float) -> None: ...


class RedisLimiter(Limiter):
    """Limits shared by every replica through one Redis, with the server's clock."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "hearth:limits",
        window: float = DEFAULT_WINDOW,
        lease: float = DEFAULT_LEASE,
        fail_open: bool = False,
    ) -> None:
        self.prefix = prefix
        self.redis = redis
        # Redis down or frozen: refuse limited requests (an outage, 503) or let them pass.
        self.fail_open = fail_open
        self._failing_open = False
        self._window_us = round(window * 1_000_000)
        self._lease_us = round(lease * 1_000_000)
        self._window_arg = b"%d" % self._window_us
        self._lease_arg = b"%d" % self._lease_us
        self._key_cache: dict[str, bytes] = {}
        # The scripts go through a lean pipelined client (`_resp.py`) where the server is
        # reached over plain TCP, else through redis-py (which loads a script itself the
        # first time a server lacks it).
        self._fast = RespClient.from_redis(redis)
        self._admit_lua, self._settle_lua = Script(ADMIT_LUA), Script(SETTLE_LUA)
        self._renew_lua = Script(RENEW_LUA)
        self._scripts = {
            lua: redis.register_script(lua.source)
            for lua in (self._admit_lua, self._settle_lua, self._renew_lua)
        }
        # Concurrency leases this replica holds: admission id -> (the admission, its
        # concurrency sets). Weakly: an admission dropped unsettled (a request lost to a
        # bug) is renewed no more, so its slot frees within a lease, as a dead replica's.
        self._held: dict[str, tuple[weakref.ref[Admission], list[bytes]]] = {}
        self._renewal = BackgroundTask("hearth-lease-renewal")

    async def close(self) -> None:
        await self._renewal.stop()
        if self._fast is not None:
            await self._fast.close()
        await self.redis.aclose()

    async def _renew_leases(self) -> None:
        """Every quarter lease, push the leases of the requests still running here further,
        in one round trip. A replica that dies stops renewing, and its slots free within a
        lease."""
        while True:
            await asyncio.sleep(self._lease_us / 4_000_000)
            held = [(i, sets) for i, (ref, sets) in list(self._held.items()) if ref() is not None]
            for gone in self._held.keys() - {i for i, _ in held}:
                del self._held[gone]
            if not held:
                continue
            keys = [key for _, sets in held for key in sets]
            ids = [admission.encode() for admission, sets in held for _ in sets]
            try:
                await self._run(self._renew_lua, keys, [self._lease_arg, *ids])
            except (RedisError, OSError):
                # Redis is away: admissions fail meanwhile; renew again at the next turn.
                continue

    shared = True

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def _run(self, script: Script, keys: list[bytes], args: list[bytes]) -> Any:
        if self._fast is not None:
            return await self._fast.evalsha(script, keys, args)
        return await self._scripts[script](keys=keys, args=args)

    async def _admit(self, admission: Admission) -> _Refusal | None:
        try:
            refusal = await self._admit_in_redis(admission)
        except (RedisError, OSError) as exc:
            if not self.fail_open:
                raise  # an outage: 503 with Retry-After (hearth.http.outages)
            if not self._failing_open:
                log.error("Redis unavailable, limits not enforced until it is back: %s", exc)
                self._failing_open = True
            admission.settled = True  # nothing was counted, so nothing to settle
            return None
        if self._failing_open:
            log.warning("Redis is back: limits enforced again")
            self._failing_open = False
        return refusal

    async def _admit_in_redis(self, admission: Admission) -> _Refusal | None:
        # Arguments go as bytes, the per-subject ones encoded once per set of limits:
        # redis-py encodes each argument on every call otherwise, a measurable part of the
        # request's CPU on the key path.
        args: list[bytes] = [
            admission.id.encode(),
            self._lease_arg,
            self._window_arg,
            b"%d" % admission.estimated_tokens,
        ]
        for _, limits in admission.subjects:
            args += _admit_args(limits)
        keys = self._keys(admission)
        reply = await self._run(self._admit_lua, keys, args)
        if int(reply[0]) == 1:
            sets = [
                key + b":c"
                for key, (_, limits) in zip(keys, admission.subjects, strict=True)
                if limits.max_concurrent is not None
            ]
            if sets:
                self._held[admission.id] = (weakref.ref(admission), sets)
                if not self._renewal.running:
                    self._renewal.start(self._renew_leases())
            return None
        limit = reply[3].decode() if isinstance(reply[3], bytes) else reply[3]
        return _Refusal(int(reply[2]) - 1, cast(LimitName, limit), int(reply[1]) / 1_000_000)

    async def _settle(self, admission: Admission, token_delta: int, cost: float) -> None:
        self._held.pop(admission.id, None)  # renewed no more, whatever the round trip does
        try:
            await self._settle_in_redis(admission, token_delta, cost)
        except (RedisError, OSError) as exc:
            # The request is over; its slot frees with its lease. What is lost is the token
            # correction and the cost against the budget: said, not hidden.
            log.warning(
                "could not settle a request in Redis (cost %.6f not charged): %s", cost, exc
            )

    async def _settle_in_redis(self, admission: Admission, token_delta: int, cost: float) -> None:
        args: list[bytes] = [
            admission.id.encode(),
            self._window_arg,
            b"%d" % token_delta,
            repr(float(cost)).encode(),
        ]
        for _, limits in admission.subjects:
            args += _settle_args(limits)
        await self._run(self._settle_lua, self._keys(admission), args)

    def _keys(self, admission: Admission) -> list[bytes]:
        keys = []
        for subject, _ in admission.subjects:
            key = self._key_cache.get(subject)
            if key is None:
                if len(self._key_cache) >= 10_000:
                    self._key_cache.clear()
                key = self._key_cache[subject] = f"{self.prefix}:{subject}".encode()
            keys.append(key)
        return keys


@lru_cache(maxsize=4096)
def _admit_args(limits: Limits) -> tuple[bytes, ...]:
    return (
        _arg(limits.requests_per_minute).encode(),
        _arg(limits.tokens_per_minute).encode(),
        _arg(limits.max_concurrent).encode(),
        _arg(limits.budget).encode(),
        (limits.budget_period or "").encode(),
    )


@lru_cache(maxsize=4096)
def _settle_args(limits: Limits) -> tuple[bytes, ...]:
    return (
        _arg(limits.tokens_per_minute).encode(),
        _arg(limits.max_concurrent).encode(),
        _arg(limits.budget).encode(),
        (limits.budget_period or "").encode(),
    )


class LocalLimiter(Limiter):
    """The same limits in memory, for a single Hearth process (`hearth up`)."""

    def __init__(
        self,
        *,
        window: float = DEFAULT_WINDOW,
        lease: float = LOCAL_LEASE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window = window
        self.lease = lease
        self._clock = clock
        self._arrivals: dict[tuple[str, str], float] = {}  # (subject, "r" | "t") → TAT
        self._slots: dict[str, dict[str, float]] = {}  # subject → admission id → expiry
        self._spent: dict[str, tuple[int, float]] = {}  # subject → (period start, spent)
        # Admission never awaits, so it is atomic on one event loop already; the lock keeps
        # it so when several loops (threads) share the limiter.
        self._lock = threading.Lock()

    async def _admit(self, admission: Admission) -> _Refusal | None:
        with self._lock:
            return self._admit_now(admission, self._clock())

    async def _settle(self, admission: Admission, token_delta: int, cost: float) -> None:
        with self._lock:
            self._settle_now(admission, token_delta, cost, self._clock())

    def _admit_now(self, admission: Admission, now: float) -> _Refusal | None:
        # Check everything first, write only if all pass: a refusal costs no one anything.
        refusal: _Refusal | None = None
        arrivals: list[tuple[tuple[str, str], float]] = []
        slots: list[dict[str, float]] = []

        def refuse(wait: float, index: int, limit: LimitName) -> None:
            nonlocal refusal
            if refusal is None or wait > refusal.wait:
                refusal = _Refusal(index, limit, wait)

        for i, (subject, limits) in enumerate(admission.subjects):
            if limits.requests_per_minute is not None:
                key = (subject, "r")
                tat, wait = self._gcra(key, limits.requests_per_minute, 1, now)
                if tat is None:
                    refuse(wait, i, "requests_per_minute")
                else:
                    arrivals.append((key, tat))
            if limits.tokens_per_minute is not None:
                key = (subject, "t")
                weight = admission.estimated_tokens
                tat, wait = self._gcra(key, limits.tokens_per_minute, weight, now)
                if tat is None:
                    refuse(wait, i, "tokens_per_minute")
                else:
                    arrivals.append((key, tat))
            if limits.max_concurrent is not None:
                held = self._slots.setdefault(subject, {})
                if len(held) >= limits.max_concurrent:
                    # Expired leases only matter when they would refuse someone.
                    for slot, expiry in list(held.items()):
                        if expiry <= now:
                            del held[slot]
                if len(held) >= limits.max_concurrent:
                    refuse(min(min(held.values()) - now, 1.0), i, "max_concurrent")
                else:
                    slots.append(held)
            if limits.budget is not None and limits.budget_period is not None:
                start, stop = period_bounds(limits.budget_period, now)
                if self._spent_in(subject, start) >= limits.budget:
                    refuse(stop - now, i, "budget")
        if refusal is not None:
            return refusal
        self._arrivals.update(arrivals)
        for held in slots:
            held[admission.id] = now + self.lease
        return None

    def _gcra(
        self, key: tuple[str, str], limit: int, weight: int, now: float
    ) -> tuple[float | None, float]:
        """The new arrival time if `weight` fits now, else None and the wait until it does."""
        interval = self.window / limit
        tat = max(self._arrivals.get(key, now), now)
        over = tat + min(weight, limit) * interval - self.window - now
        if over > _SLACK:
            return None, over
        return tat + weight * interval, 0.0

    def _settle_now(self, admission: Admission, token_delta: int, cost: float, now: float) -> None:
        for subject, limits in admission.subjects:
            if limits.tokens_per_minute is not None and token_delta:
                key = (subject, "t")
                tat = max(self._arrivals.get(key, now), now)
                tat += token_delta * self.window / limits.tokens_per_minute
                if tat > now:
                    self._arrivals[key] = tat
                else:
                    self._arrivals.pop(key, None)
            if limits.max_concurrent is not None:
                held = self._slots.get(subject, {})
                held.pop(admission.id, None)
                if not held:
                    self._slots.pop(subject, None)
            if limits.budget_period is not None and cost > 0:
                start, _ = period_bounds(limits.budget_period, now)
                self._spent[subject] = (start, self._spent_in(subject, start) + cost)

    def _spent_in(self, subject: str, start: int) -> float:
        spent = self._spent.get(subject)
        return spent[1] if spent is not None and spent[0] == start else 0.0


def period_bounds(period: BudgetPeriod, now: float) -> tuple[int, int]:
    """The UTC calendar period holding `now`, as Unix seconds [start, end); weeks start Monday."""
    today = datetime.fromtimestamp(now, UTC).date()
    if period == "day":
        start, end = today, today + timedelta(days=1)
    elif period == "week":
        start = today - timedelta(days=today.weekday())
        end = start + timedelta(days=7)
    else:
        start = today.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return (start - _EPOCH).days * 86400, (end - _EPOCH).days * 86400


def _arg(value: float | None) -> str:
    return "" if value is None else repr(value)


def _rate_limited(admission: Admission, refusal: _Refusal) -> RateLimited:
    subject, limits = admission.subjects[refusal.index]
    wait = refusal.wait
    if refusal.limit == "budget":
        # OpenAI's code for a spent quota, which clients already know not to retry soon.
        return RateLimited(
            f"The budget of {limits.budget:g} per {limits.budget_period} for {subject} is "
            f"spent; it renews in {_duration(wait)}.",
            retry_after=wait,
            limit="budget",
            code="insufficient_quota",
        )
    if refusal.limit == "requests_per_minute":
        what = f"requests per minute: limit {limits.requests_per_minute}"
    elif refusal.limit == "tokens_per_minute":
        what = (
            f"tokens per minute: limit {limits.tokens_per_minute}, "
            f"requested {admission.estimated_tokens}"
        )
    else:
        what = f"concurrent requests: limit {limits.max_concurrent}"
    return RateLimited(
        f"Rate limit reached for {subject} on {what}. Try again in {wait:.2f}s.",
        retry_after=wait,
        limit=refusal.limit,
    )


def _duration(seconds: float) -> str:
    minutes = math.ceil(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join(parts) or "1m"
