-- Hand out webhook deliveries that are due. Each claimed job's score moves to the end of the
-- sender's lease, so a sender that dies mid-delivery leaves it due again, not lost.
-- KEYS: webhooks_due
-- ARGV: now_ms, lease_until_ms, limit
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
end
return due
