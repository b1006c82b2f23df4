-- Reserve the next upstream request of a job on one credential of a provider's pool.
--
-- Each credential has a GCRA-style schedule (KEYS[i]: the time, in ms on the Redis clock, at
-- which its next request may go) and, when the provider runs few jobs at once, a set of the
-- jobs it runs (KEYS[n+i]: ZSET job id -> ms its slot lapses unless renewed). A request is
-- reserved rather than refused: the credential whose next free time is earliest is chosen, its
-- schedule moves on by one interval, and the caller learns how long to wait. Jobs therefore
-- queue in order instead of retrying in a herd, and no credential ever exceeds its rate.
-- A job that already holds a credential's slot keeps it (and renews it); a credential whose
-- slots are all held by other jobs is skipped.
--
-- Where every request from the gateway's egress address counts against one limit whatever the
-- credential (a per-IP limit), the egress schedule (KEYS[2n+1]) and job set (KEYS[2n+2]) are
-- checked and moved on as well: the request goes at the later of the two free times, and a job
-- is admitted only while the egress job slots have room.
--
-- Jobs that find no slot queue for one in order (KEYS[2n+3]: ZSET job -> ms it began waiting;
-- KEYS[2n+4]: ZSET job -> ms it last asked, so that a waiter that stops asking lapses after
-- ARGV[10] ms): a job not holding a slot is admitted only while fewer jobs wait before it
-- than there are free slots, and learns its place (1: next) when it is not.
--
-- KEYS: rate[1..n], jobs[1..n], egress rate, egress jobs, waiting, waiting seen
-- ARGV: n, interval_ms (0: no rate limit), concurrency (0: no limit), job id,
--       fixed credential (-1: any), slot_lapse_ms, egress interval_ms (0: none),
--       egress concurrency (0: none), per-credential interval_ms ("" : all interval_ms;
--       else comma-separated, one per credential, where their plans differ), waiter lapse_ms
-- Returns {credential, wait_ms, at_ms (Redis clock)}, or {-1, place, 0} when every
-- credential's slots (or the egress slots) are taken or earlier waiters have them.
--#include clock
local now = now_ms()
local n = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local concurrency = tonumber(ARGV[3])
local job = ARGV[4]
local fixed = tonumber(ARGV[5])
local slot_lapse = tonumber(ARGV[6])
local egress_interval = tonumber(ARGV[7] or '0')
local egress_concurrency = tonumber(ARGV[8] or '0')
local egress_rate, egress_jobs = KEYS[2 * n + 1], KEYS[2 * n + 2]
local intervals = {}
for value in string.gmatch(ARGV[9] or '', '[^,]+') do
  intervals[#intervals + 1] = tonumber(value)
end

local waiting, seen = KEYS[2 * n + 3], KEYS[2 * n + 4]
local waiter_lapse = tonumber(ARGV[10] or '0')

-- The gateway's own queue: only where job slots are limited, for a job holding none.
local holds_egress = false
local free = nil -- free job slots (nil: unlimited)
if egress_concurrency > 0 then
  redis.call('ZREMRANGEBYSCORE', egress_jobs, '-inf', now)
  holds_egress = redis.call('ZSCORE', egress_jobs, job) ~= false
  free = math.max(0, egress_concurrency - redis.call('ZCARD', egress_jobs))
end
local holds = holds_egress
if concurrency > 0 then
  local own = 0
  for i = 1, n do
    if fixed < 0 or fixed == i - 1 then
      redis.call('ZREMRANGEBYSCORE', KEYS[n + i], '-inf', now)
      if redis.call('ZSCORE', KEYS[n + i], job) then
        holds = true
      end
      own = own + math.max(0, concurrency - redis.call('ZCARD', KEYS[n + i]))
    end
  end
  free = free and math.min(free, own) or own
end
if free ~= nil and not holds then
  if waiter_lapse > 0 then
    for _, gone in ipairs(redis.call('ZRANGEBYSCORE', seen, '-inf', now - waiter_lapse)) do
      redis.call('ZREM', waiting, gone)
      redis.call('ZREM', seen, gone)
    end
  end
  local ahead = redis.call('ZRANK', waiting, job)
  if not ahead then
    ahead = redis.call('ZCARD', waiting)
  end
  if ahead >= free then
    redis.call('ZADD', waiting, 'NX', now, job)
    redis.call('ZADD', seen, now, job)
    redis.call('PEXPIRE', waiting, math.max(waiter_lapse, slot_lapse))
    redis.call('PEXPIRE', seen, math.max(waiter_lapse, slot_lapse))
    return {-1, ahead + 1, 0}
  end
end
if egress_concurrency > 0 and not holds_egress
    and redis.call('ZCARD', egress_jobs) >= egress_concurrency then
  return {-1, 0, 0}
end

local best, best_at = -1, nil
for i = 1, n do
  if fixed < 0 or fixed == i - 1 then
    local free = true
    if concurrency > 0 then
      redis.call('ZREMRANGEBYSCORE', KEYS[n + i], '-inf', now)
      if not redis.call('ZSCORE', KEYS[n + i], job)
          and redis.call('ZCARD', KEYS[n + i]) >= concurrency then
        free = false
      end
    end
    if free then
      local at = math.max(tonumber(redis.call('GET', KEYS[i]) or now), now)
      if best_at == nil or at < best_at then
        best, best_at = i, at
      end
    end
  end
end
if best < 0 then
  return {-1, 0, 0}
end
redis.call('ZREM', waiting, job)
redis.call('ZREM', seen, job)
local credential_at = best_at
if egress_interval > 0 then
  best_at = math.max(best_at, tonumber(redis.call('GET', egress_rate) or now), now)
  local egress_next = best_at + egress_interval
  redis.call('SET', egress_rate, string.format('%.0f', egress_next), 'PX',
    egress_next - now + 1000)
end
interval = intervals[best] or interval
if interval > 0 then
  local next_at = math.max(credential_at, best_at) + interval
  redis.call('SET', KEYS[best], string.format('%.0f', next_at), 'PX', next_at - now + 1000)
end
if egress_concurrency > 0 then
  redis.call('ZADD', egress_jobs, now + slot_lapse, job)
  redis.call('PEXPIRE', egress_jobs, slot_lapse)
end
if concurrency > 0 then
  redis.call('ZADD', KEYS[n + best], now + slot_lapse, job)
  redis.call('PEXPIRE', KEYS[n + best], slot_lapse)
end
return {best - 1, best_at - now, best_at}
