-- One provider's circuit breaker, shared by every process.
--
-- KEYS[1]: HASH state (closed | open | half_open), opened_at, probe, probe_until
-- KEYS[2]: HASH of outcome counts per time bucket: "<bucket>:ok" / "<bucket>:fail"
-- ARGV[1]: action: "allow" (may a submit go out?) or "ok" / "fail" (an outcome)
-- ARGV[2]: job id (the probe's holder in half-open)
-- ARGV[3]: window_ms, ARGV[4]: bucket_ms, ARGV[5]: min_requests, ARGV[6]: failure_ratio,
-- ARGV[7]: open_ms (how long the circuit stays open before a probe), ARGV[8]: probe_ms
-- ARGV[9]: successes a process counted locally since it last reported (added to the window)
-- ARGV[10]: the cache-invalidation channel, told of every change of state
-- Returns {allowed (1/0), state}.
--#include clock
local now = now_ms()
local action, job = ARGV[1], ARGV[2]
local window, bucket_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local min_requests, ratio = tonumber(ARGV[5]), tonumber(ARGV[6])
local open_ms, probe_ms = tonumber(ARGV[7]), tonumber(ARGV[8])
local batched_ok, channel = tonumber(ARGV[9]), ARGV[10]

local state = redis.call('HGET', KEYS[1], 'state') or 'closed'

local function set_state(new_state)
  if new_state ~= state then
    redis.call('PUBLISH', channel, 'circuit')
  end
  state = new_state
  redis.call('HSET', KEYS[1], 'state', new_state)
  if new_state == 'open' then
    redis.call('HSET', KEYS[1], 'opened_at', now)
    redis.call('HDEL', KEYS[1], 'probe', 'probe_until')
  elseif new_state == 'closed' then
    redis.call('HDEL', KEYS[1], 'opened_at', 'probe', 'probe_until')
    redis.call('DEL', KEYS[2])
  end
end

if action == 'allow' then
  if state == 'closed' then
    return {1, state}
  end
  if state == 'open' then
    if now - tonumber(redis.call('HGET', KEYS[1], 'opened_at') or now) < open_ms then
      return {0, state}
    end
    set_state('half_open')
  end
  -- half-open: one probe at a time; a probe whose holder went quiet is handed on
  local holder = redis.call('HGET', KEYS[1], 'probe')
  local until_ms = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or 0)
  if holder and holder ~= job and until_ms > now then
    return {0, state}
  end
  redis.call('HSET', KEYS[1], 'probe', job, 'probe_until', now + probe_ms)
  return {1, state}
end

-- an outcome
if state == 'half_open' then
  if action == 'ok' then
    set_state('closed')
  else
    set_state('open')
  end
  return {1, state}
end
if state == 'open' then
  return {1, state}  -- late outcomes of calls made before it opened change nothing
end
local current = math.floor(now / bucket_ms)
redis.call('HINCRBY', KEYS[2], current .. ':' .. action, 1)
if batched_ok > 0 then
  redis.call('HINCRBY', KEYS[2], current .. ':ok', batched_ok)
end
redis.call('PEXPIRE', KEYS[2], window + bucket_ms)
if action == 'fail' then
  local oldest = current - math.floor(window / bucket_ms) + 1
  local ok, fail = 0, 0
  local counts = redis.call('HGETALL', KEYS[2])
  for i = 1, #counts, 2 do
    local b, kind = string.match(counts[i], '^(%-?%d+):(%a+)$')
    if tonumber(b) >= oldest then
      if kind == 'ok' then ok = ok + tonumber(counts[i + 1]) else fail = fail + tonumber(counts[i + 1]) end
    else
      redis.call('HDEL', KEYS[2], counts[i])
    end
  end
  if ok + fail >= min_requests and fail >= ratio * (ok + fail) then
    set_state('open')
  end
end
return {1, state}
