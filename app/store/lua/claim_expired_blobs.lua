-- Hand out blobs whose retention ended. Each claimed entry's score moves to the end of the
-- sweeper's claim, so a sweeper that dies mid-sweep leaves it due again, not lost.
-- KEYS: blob_expiries
-- ARGV: now_ms, claim_until_ms, limit
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[3])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
end
return due
