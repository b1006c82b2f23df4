-- Count one request against a GCRA bucket (lib/rate.lua).
-- Returns {allowed, remaining, retry_after_us, reset_us}.
-- KEYS: bucket
-- ARGV: emission_interval_us, burst
--#include rate
return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
