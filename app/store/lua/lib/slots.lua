-- Concurrency slots: a ZSET of holders scored by when their slot expires (Redis clock).
--#include clock

-- Take one of `limit` slots for `holder` until now + ttl_ms. Expired slots are dropped first;
-- a holder that already has a slot just renews it. Returns 1 with a slot, 0 when all are taken.
local function take_slot(slots, holder, limit, ttl_ms)
  local now = now_ms()
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  if not redis.call('ZSCORE', slots, holder) then
    if redis.call('ZCARD', slots) >= limit then
      return 0
    end
  end
  redis.call('ZADD', slots, now + ttl_ms, holder)
  local last = redis.call('ZRANGE', slots, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', slots, last[2])
  return 1
end
