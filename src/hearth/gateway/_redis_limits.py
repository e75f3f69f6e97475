"""The Lua side of `RedisLimiter`: one script to admit a request, one to settle it.

Each runs atomically inside Redis, so every replica sees the same counters, and each is one
round trip (EVALSHA). Time comes from the server's TIME, in microseconds, so replicas with
skewed clocks agree. Kept as Python strings (not a .lua file) so they ship with the package.

Keys, per subject (`KEYS[i]` is the subject's base key):
  base:r              GCRA theoretical arrival time for requests, expires when it is reached
  base:t              the same for tokens
  base:c              sorted set of admission ids scored by lease expiry (concurrency slots),
                      renewed by the replica holding them (RENEW_LUA) while they run
  base:b:<start>      money spent in the budget period starting at <start> (Unix seconds)

Budget keys are built inside the script (the period depends on the server's clock); on a
Redis Cluster, give the prefix a hash tag so all of a request's keys share a slot.
"""

from __future__ import annotations

# Shared by both scripts. Calendar periods are in UTC, from the server's clock; this mirrors
# `period_bounds` in limits.py, and tests check the two agree across month, year and leap-day
# boundaries.
COMMON_LUA = """
-- Integer arguments (PXAT, EXPIREAT) must not reach Redis in exponent notation.
local function int(x) return string.format('%d', math.ceil(x)) end

local MONTH_DAYS = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
local function period_bounds(period, now_s)
  local day = math.floor(now_s / 86400)
  if period == 'day' then
    return day * 86400, (day + 1) * 86400
  elseif period == 'week' then
    -- Day 0 (1970-01-01) was a Thursday; weeks start on Monday, as in ISO 8601.
    local monday = day - (day + 3) % 7
    return monday * 86400, (monday + 7) * 86400
  end
  -- month: the civil date of `day`, by Howard Hinnant's days-to-civil algorithm
  local z = day + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor(
    (doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  local len = MONTH_DAYS[m]
  if m == 2 and y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) then len = 29 end
  local first = day - (d - 1)
  return first * 86400, (first + len) * 86400
end
"""

# ARGV: id, lease (µs), window (µs), estimated tokens, then per subject
# requests/window, tokens/window, max concurrent, budget, period ("" = unlimited).
# Returns {1} when admitted, else {0, wait µs, subject index, limit name} for the limit
# with the longest wait (the request needs all of them to pass).
ADMIT_LUA = (
    COMMON_LUA
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local id, lease = ARGV[1], tonumber(ARGV[2])
local window, tokens = tonumber(ARGV[3]), tonumber(ARGV[4])
-- Float rounding at ~1.7e15 µs is a fraction of a µs: never refuse the last of a burst for it.
local SLACK = 1

-- Each redis.call costs about as much as the Lua around it: read every counter in one MGET.
local subjects, names = {}, {}
for i, base in ipairs(KEYS) do
  local o = 4 + (i - 1) * 5
  local s = {base = base, rpm = tonumber(ARGV[o + 1]), tpm = tonumber(ARGV[o + 2]),
             conc = tonumber(ARGV[o + 3]), budget = tonumber(ARGV[o + 4])}
  if s.rpm then names[#names + 1] = base .. ':r'; s.r = #names end
  if s.tpm then names[#names + 1] = base .. ':t'; s.t = #names end
  if s.budget then
    s.start, s.stop = period_bounds(ARGV[o + 5], math.floor(now / 1000000))
    names[#names + 1] = base .. ':b:' .. int(s.start); s.b = #names
  end
  subjects[i] = s
end
local values = {}
if #names > 0 then values = redis.call('MGET', unpack(names)) end

local wait, refused_by, refused_limit = -1, 0, ''
local function refuse(w, i, limit)
  if w > wait then wait, refused_by, refused_limit = w, i, limit end
end

-- GCRA with a burst of one full window. A request heavier than the whole limit is let
-- through once the bucket is full (and charged in full), rather than refused forever.
local function gcra(stored, limit, weight)
  local interval = window / limit
  local tat = tonumber(stored) or now
  if tat < now then tat = now end
  local over = tat + math.min(weight, limit) * interval - window - now
  if over > SLACK then return nil, over end
  return tat + weight * interval
end

-- Check everything first, write only if all pass: a refusal costs no one any allowance.
local arrivals, slots = {}, {}
for i, s in ipairs(subjects) do
  if s.rpm then
    local tat, w = gcra(values[s.r], s.rpm, 1)
    if tat then arrivals[#arrivals + 1] = {names[s.r], tat}
    else refuse(w, i, 'requests_per_minute') end
  end
  if s.tpm then
    local tat, w = gcra(values[s.t], s.tpm, tokens)
    if tat then arrivals[#arrivals + 1] = {names[s.t], tat}
    else refuse(w, i, 'tokens_per_minute') end
  end
  if s.conc then
    local key = s.base .. ':c'
    local held = redis.call('ZCARD', key)
    if held >= s.conc then
      -- Expired leases only matter when they would refuse someone: prune them then.
      redis.call('ZREMRANGEBYSCORE', key, '-inf', int(now))
      held = redis.call('ZCARD', key)
    end
    if held >= s.conc then
      -- Holders renew their leases every quarter lease. One with less than two thirds of
      -- a lease left missed its renewals (its replica died): its slot frees when the lease
      -- ends, so that is the wait. Otherwise a slot frees when a request ends, which we
      -- cannot know: hint at most a second.
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      local left = tonumber(first[2]) - now
      if left > lease * 2 / 3 then left = math.min(left, 1000000) end
      refuse(left, i, 'max_concurrent')
    else
      slots[#slots + 1] = key
    end
  end
  if s.budget and (tonumber(values[s.b]) or 0) >= s.budget then
    refuse(s.stop * 1000000 - now, i, 'budget')
  end
end
if wait >= 0 then
  return {0, int(wait), refused_by, refused_limit}
end
for _, a in ipairs(arrivals) do
  redis.call('SET', a[1], string.format('%.17g', a[2]), 'PXAT', int(a[2] / 1000))
end
for _, key in ipairs(slots) do
  redis.call('ZADD', key, int(now + lease), id)
  redis.call('PEXPIREAT', key, int((now + lease) / 1000))
end
return {1}
"""
)

# ARGV: id, window (µs), actual minus estimated tokens, cost, then per subject
# tokens/window, max concurrent, budget, period ("" = unlimited).
SETTLE_LUA = (
    COMMON_LUA
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local id, window = ARGV[1], tonumber(ARGV[2])
local delta, cost = tonumber(ARGV[3]), tonumber(ARGV[4])

local names, limits = {}, {}
if delta ~= 0 then
  for i, base in ipairs(KEYS) do
    local tpm = tonumber(ARGV[4 + (i - 1) * 4 + 1])
    if tpm then names[#names + 1] = base .. ':t'; limits[#names] = tpm end
  end
end
if #names > 0 then
  -- Move each arrival time by the difference, as if the actual count had been charged.
  local values = redis.call('MGET', unpack(names))
  for j, key in ipairs(names) do
    local tat = tonumber(values[j]) or now
    if tat < now then tat = now end
    tat = tat + delta * window / limits[j]
    if tat > now then
      redis.call('SET', key, string.format('%.17g', tat), 'PXAT', int(tat / 1000))
    else
      redis.call('DEL', key)
    end
  end
end

for i, base in ipairs(KEYS) do
  local o = 4 + (i - 1) * 4
  local conc, budget, period = tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3]), ARGV[o + 4]
  if conc then
    redis.call('ZREM', base .. ':c', id)
  end
  if budget and cost > 0 then
    local start, stop = period_bounds(period, math.floor(now / 1000000))
    local key = base .. ':b:' .. int(start)
    -- Spending is only ever added, so a total equal to this cost means a new key.
    if tonumber(redis.call('INCRBYFLOAT', key, ARGV[4])) <= cost then
      redis.call('EXPIREAT', key, int(stop))
    end
  end
end
return 1
"""
)

# KEYS: concurrency sets (base:c); ARGV: lease (µs), then the admission id held in each.
# Pushes the leases this replica still holds a lease further; a settled id (removed) is
# not added back. The key lives as long as its longest lease.
RENEW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_ = string.format('%d', math.ceil(now + tonumber(ARGV[1])))
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', until_, ARGV[i + 1])
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', key, string.format('%d', math.ceil(tonumber(last[2]) / 1000)))
  end
end
return 1
"""
