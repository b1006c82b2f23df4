-- A job's stored record, read by a request counted against its rate limit first (lib/rate.lua):
-- over the rate, nothing is read. One script instead of the check and a read.
-- Returns {allowed, remaining, retry_after_us, reset_us, body (false when unknown or refused)}.
-- KEYS: rate_bucket, job (none: only the request is counted)
-- ARGV: rate_interval_us, rate_burst
--#include rate
local counted = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if counted[1] == 0 then
  return counted
end
if KEYS[2] then
  counted[5] = redis.call('HGET', KEYS[2], 'body')
end
return counted
