-- Count new blobs against a tenant's storage quota and schedule their deletion, all or none.
-- Returns {1, used} when stored (used: the tenant's bytes after), {0, used} when the quota
-- would be exceeded (nothing changed).
-- KEYS: storage_used, blob_expiries
-- ARGV: quota_bytes, then per blob: member (<id>|<bytes>|<tenant>), bytes, expires_ms
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local quota = tonumber(ARGV[1])
local total = 0
for i = 2, #ARGV, 3 do
  total = total + tonumber(ARGV[i + 1])
end
if used + total > quota then
  return {0, used}
end
for i = 2, #ARGV, 3 do
  redis.call('ZADD', KEYS[2], ARGV[i + 2], ARGV[i])
end
return {1, redis.call('INCRBY', KEYS[1], total)}
