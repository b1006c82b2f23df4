-- GCRA on the Redis clock, so every process agrees on "now". The bucket key holds the
-- theoretical arrival time (TAT, µs); a request is allowed when, counting it, the TAT would be
-- at most burst emission intervals ahead of now. The key lives until the bucket is full again.
--#include clock

-- Count one request against `bucket`. Returns {allowed, remaining, retry_after_us, reset_us}.
local function gcra(bucket, interval, burst)
  local now = now_us()
  local tat = tonumber(redis.call('GET', bucket) or now)
  if tat < now then
    tat = now
  end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if now < allow_at then
    return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
  end
  redis.call('SET', bucket, string.format('%.0f', new_tat), 'PX',
    math.ceil((new_tat - now) / 1000))
  return {1, math.floor((now - allow_at) / interval), 0, math.ceil(new_tat - now)}
end
