-- Reserve the next upstream request of a job on one credential of a provider's pool.
--
-- Each credential has a GCRA-style schedule (KEYS[i]: the time, in ms on the Redis clock, at
-- which its next request may go) and, when the provider runs few jobs at once, a set of the
-- jobs it holds (KEYS[n+i]: ZSET job id -> ms the hold lapses unless renewed). A request is
-- reserved rather than refused: the credential whose next free time is earliest is chosen, its
-- schedule moves on by one interval, and the caller learns how long to wait. Jobs therefore
-- queue in order instead of retrying in a herd, and no credential ever exceeds its rate.
-- A job that already holds a credential's slot keeps it (and renews it); a credential whose
-- slots are all held by other jobs is skipped.
--
-- KEYS: rate[1..n], jobs[1..n]
-- ARGV: n, interval_ms (0: no rate limit), concurrency (0: no limit), job id,
--       fixed credential (-1: any), hold_ms
-- Returns {credential, wait_ms, at_ms (Redis clock)}, or {-1, 0, 0} when every credential's
-- slots are taken.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local concurrency = tonumber(ARGV[3])
local job = ARGV[4]
local fixed = tonumber(ARGV[5])
local hold = tonumber(ARGV[6])

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
if interval > 0 then
  local next_at = best_at + interval
  redis.call('SET', KEYS[best], string.format('%.0f', next_at), 'PX', next_at - now + 1000)
end
if concurrency > 0 then
  redis.call('ZADD', KEYS[n + best], now + hold, job)
  redis.call('PEXPIRE', KEYS[n + best], hold)
end
return {best - 1, best_at - now, best_at}
