-- Count new blobs against a tenant's storage quota and schedule their deletion, all or none.
-- Returns {1, used, quota} when stored (used: the tenant's bytes after), {0, used, quota}
-- when the quota would be exceeded (nothing changed).
-- The quota is the tenant's own (its record's storage_quota_bytes) or the default.
-- KEYS: storage_used, blob_expiries, tenant
-- ARGV: default_quota_bytes, then per blob: member (<id>|<bytes>|<tenant>), bytes, expires_ms
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local quota = tonumber(redis.call('HGET', KEYS[3], 'storage_quota_bytes') or ARGV[1])
local total = 0
for i = 2, #ARGV, 3 do
  total = total + tonumber(ARGV[i + 1])
end
if used + total > quota then
  return {0, used, quota}
end
for i = 2, #ARGV, 3 do
  redis.call('ZADD', KEYS[2], ARGV[i + 2], ARGV[i])
end
return {1, redis.call('INCRBY', KEYS[1], total), quota}
