"""Lua scripts that make the Redis rate limiter and budget guard atomic across replicas.

Each runs as one EVALSHA, so one round trip decides and updates every counter it touches, and no
other client's command runs in between. Times come from the server's ``TIME``, never from a
replica's clock, so replicas with skewed clocks share one timeline. Every key written gets an expiry.

Rate limiter keys, per subject (all under one hash tag so a multi-subject script is cluster-legal):

- ``requests`` sorted set: lease id scored by admission time (µs) — the RPM sliding log.
- ``tokens`` sorted set: lease id scored by admission time (µs) — the TPM log's order.
- ``amounts`` hash: lease id → tokens reserved (or settled), and ``__total``, their running sum.
- ``slots`` sorted set: lease id scored by the slot's expiry (µs) — open parallel slots.

Budget keys, per key and period: ``spent`` (string, integer units of 1e-8 USD), ``held`` (hash:
reservation id → units) and ``held_until`` (sorted set: reservation id scored by its expiry, ms).
"""

from __future__ import annotations

# KEYS: 4 per subject (requests, tokens, amounts, slots).
# ARGV: window_us, lease_ttl_us, lease_id, estimate, then 3 per subject: rpm, tpm, max_parallel (0: none).
# Returns {admitted (1/0), then 6 per subject: blocked bits, requests used, requests reset (µs),
#          tokens used, tokens reset (µs), retry after (µs)}.
ACQUIRE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local window = tonumber(ARGV[1])
local lease_ttl = tonumber(ARGV[2])
local lease_id = ARGV[3]
local estimate = tonumber(ARGV[4])
local cutoff = now - window
local subjects = (#ARGV - 4) / 3
local TOTAL = '__total'
local CHUNK = 500
local BLOCKED_REQUESTS, BLOCKED_TOKENS, BLOCKED_PARALLEL, TOO_LARGE = 1, 2, 4, 8

local function total_of(amounts)
  return tonumber(redis.call('HGET', amounts, TOTAL)) or 0
end

-- Drop token reservations that left the window and take them off the running sum.
local function prune_tokens(log, amounts)
  local expired = redis.call('ZRANGEBYSCORE', log, '-inf', cutoff)
  if #expired == 0 then return end
  local freed = 0
  for first = 1, #expired, CHUNK do
    local ids = {unpack(expired, first, math.min(first + CHUNK - 1, #expired))}
    local values = redis.call('HMGET', amounts, unpack(ids))
    for j = 1, #ids do freed = freed + (tonumber(values[j]) or 0) end
    redis.call('HDEL', amounts, unpack(ids))
  end
  redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff)
  redis.call('HINCRBY', amounts, TOTAL, -freed)
end

-- When enough of the oldest reservations have left the window to free `needed` tokens.
local function tokens_free_in(log, amounts, needed)
  local freed, start = 0, 0
  while true do
    local page = redis.call('ZRANGE', log, start, start + CHUNK - 1, 'WITHSCORES')
    if #page == 0 then return window end
    local ids = {}
    for j = 1, #page, 2 do ids[#ids + 1] = page[j] end
    local values = redis.call('HMGET', amounts, unpack(ids))
    for j = 1, #ids do
      freed = freed + (tonumber(values[j]) or 0)
      if freed >= needed then return tonumber(page[2 * j]) + window - now end
    end
    start = start + CHUNK
  end
end

local function oldest_reset(log)
  local first = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  if #first == 0 then return 0 end
  return tonumber(first[2]) + window - now
end

local checks = {}
local admitted = true
for i = 0, subjects - 1 do
  local requests, tokens, amounts, slots = KEYS[4*i + 1], KEYS[4*i + 2], KEYS[4*i + 3], KEYS[4*i + 4]
  local rpm, tpm, parallel = tonumber(ARGV[5 + 3*i]), tonumber(ARGV[6 + 3*i]), tonumber(ARGV[7 + 3*i])
  local c = {blocked = 0, requests_used = 0, tokens_used = 0, retry = 0}
  if rpm > 0 then
    redis.call('ZREMRANGEBYSCORE', requests, '-inf', cutoff)
    c.requests_used = redis.call('ZCARD', requests)
    if c.requests_used >= rpm then
      c.blocked = c.blocked + BLOCKED_REQUESTS
      -- It fits once all but rpm - 1 of the logged requests have left the window.
      local nth = redis.call('ZRANGE', requests, c.requests_used - rpm, c.requests_used - rpm, 'WITHSCORES')
      c.retry = tonumber(nth[2]) + window - now
    end
  end
  if tpm > 0 then
    prune_tokens(tokens, amounts)
    c.tokens_used = total_of(amounts)
    if estimate > tpm then
      c.blocked = c.blocked + TOO_LARGE
    elseif c.tokens_used + estimate > tpm then
      c.blocked = c.blocked + BLOCKED_TOKENS
      c.retry = math.max(c.retry, tokens_free_in(tokens, amounts, c.tokens_used + estimate - tpm))
    end
  end
  if parallel > 0 then
    redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
    if redis.call('ZCARD', slots) >= parallel then
      c.blocked = c.blocked + BLOCKED_PARALLEL
    end
  end
  if c.blocked ~= 0 then admitted = false end
  checks[i + 1] = c
end

local window_ms = math.ceil(window / 1000) + 1
local lease_ttl_ms = math.ceil(lease_ttl / 1000) + 1
if admitted then
  for i = 0, subjects - 1 do
    local requests, tokens, amounts, slots = KEYS[4*i + 1], KEYS[4*i + 2], KEYS[4*i + 3], KEYS[4*i + 4]
    local rpm, tpm, parallel = tonumber(ARGV[5 + 3*i]), tonumber(ARGV[6 + 3*i]), tonumber(ARGV[7 + 3*i])
    local c = checks[i + 1]
    if rpm > 0 then
      redis.call('ZADD', requests, now, lease_id)
      redis.call('PEXPIRE', requests, window_ms)
      c.requests_used = c.requests_used + 1
    end
    if tpm > 0 then
      redis.call('ZADD', tokens, now, lease_id)
      redis.call('HSET', amounts, lease_id, estimate)
      redis.call('HINCRBY', amounts, TOTAL, estimate)
      redis.call('PEXPIRE', tokens, window_ms)
      redis.call('PEXPIRE', amounts, window_ms)
      c.tokens_used = c.tokens_used + estimate
    end
    if parallel > 0 then
      redis.call('ZADD', slots, now + lease_ttl, lease_id)
      redis.call('PEXPIRE', slots, lease_ttl_ms)
    end
  end
end

local result = {admitted and 1 or 0}
for i = 0, subjects - 1 do
  local c = checks[i + 1]
  local requests_reset, tokens_reset = 0, 0
  if tonumber(ARGV[5 + 3*i]) > 0 then requests_reset = oldest_reset(KEYS[4*i + 1]) end
  if tonumber(ARGV[6 + 3*i]) > 0 then tokens_reset = oldest_reset(KEYS[4*i + 2]) end
  local fields = {c.blocked, c.requests_used, requests_reset, c.tokens_used, tokens_reset, c.retry}
  for _, value in ipairs(fields) do result[#result + 1] = value end
end
return result
"""

# KEYS: 2 per subject limiting tokens (tokens, amounts), then the slots of those limiting parallel requests.
# ARGV: lease_id, actual tokens, number of token key pairs.
# A reservation still in the window is replaced by the actual count (one already out is left alone);
# the lease's parallel slots are freed.
UPDATE_LEASE = """
local lease_id = ARGV[1]
local actual = tonumber(ARGV[2])
local token_keys = 2 * tonumber(ARGV[3])
for i = 1, token_keys, 2 do
  if redis.call('ZSCORE', KEYS[i], lease_id) then
    local reserved = tonumber(redis.call('HGET', KEYS[i + 1], lease_id)) or 0
    redis.call('HSET', KEYS[i + 1], lease_id, actual)
    redis.call('HINCRBY', KEYS[i + 1], '__total', actual - reserved)
  end
end
for i = token_keys + 1, #KEYS do
  redis.call('ZREM', KEYS[i], lease_id)
end
return 1
"""

# KEYS: spent, held, held_until. ARGV: reservation id, amount (units), limit (units), ttl (ms).
# Returns {status, spent, held}: status 1 reserved, 0 refused, -1 the period's counter needs seeding.
BUDGET_RESERVE = """
local spent = redis.call('GET', KEYS[1])
if not spent then return {-1, 0, 0} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local amount = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for first = 1, #expired, 500 do
  redis.call('HDEL', KEYS[2], unpack(expired, first, math.min(first + 499, #expired)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local held = 0
for _, value in ipairs(redis.call('HVALS', KEYS[2])) do held = held + tonumber(value) end
spent = tonumber(spent)
if spent + held + amount > limit then return {0, spent, held} end
redis.call('HSET', KEYS[2], ARGV[1], amount)
redis.call('ZADD', KEYS[3], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return {1, spent, held + amount}
"""

# KEYS: spent, held, held_until. ARGV: reservation id, actual cost (units; 0 to just release).
# The cost counts even when the reservation had expired: it was spent. A counter that is gone (a new
# period, or expired) is not recreated: the next reserve seeds it from the ledger.
BUDGET_SETTLE = """
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local actual = tonumber(ARGV[2])
if actual > 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCRBY', KEYS[1], ARGV[2])
end
return 1
"""
