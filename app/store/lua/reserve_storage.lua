-- Count new blobs against a tenant's storage quota and schedule their deletion, all or none;
-- with their metadata keys, also write each blob's record (SET … EX) once they fit, so a
-- request's reservation and records are one command. Returns {1, used, quota} when stored
-- (used: the tenant's bytes after), {0, used, quota} when the quota would be exceeded
-- (nothing changed, no record written).
-- A blob is counted once: with metadata keys, when a blob's record exists already (an earlier
-- attempt of the same upload stored it, under the id its Idempotency-Key bound) the answer is
-- {2, used, quota}, and when its record is gone but its entry is still scheduled (a sweeper is
-- deleting it, its retention ended) {3, used, quota}; nothing is changed either way.
-- The quota is the tenant's own (its record's storage_quota_bytes) or the default (lib/storage.lua).
-- KEYS: storage_used, blob_expiries, tenant, then one metadata key per blob (or none)
-- ARGV: default_quota_bytes, then per blob: member (<id>|<bytes>|<tenant>), bytes,
--       expires_ms; then, with metadata keys, per blob: its record (JSON), the record's ttl_s
--#include storage
local blobs = #KEYS > 3 and #KEYS - 3 or (#ARGV - 1) / 3
local total = 0
for b = 0, blobs - 1 do
  total = total + tonumber(ARGV[3 + 3 * b])
end
local fits, used, quota = storage_fits(KEYS[1], KEYS[3], ARGV[1], total)
for b = 1, #KEYS - 3 do
  if redis.call('EXISTS', KEYS[3 + b]) == 1 then
    return {2, used, quota}
  end
  if redis.call('ZSCORE', KEYS[2], ARGV[3 * b - 1]) then
    return {3, used, quota}
  end
end
if not fits then
  return {0, used, quota}
end
for b = 0, blobs - 1 do
  redis.call('ZADD', KEYS[2], ARGV[4 + 3 * b], ARGV[2 + 3 * b])
end
local records = 2 + 3 * blobs
for b = 1, #KEYS - 3 do
  redis.call('SET', KEYS[3 + b], ARGV[records + 2 * b - 2], 'EX', ARGV[records + 2 * b - 1])
end
return {1, redis.call('INCRBY', KEYS[1], total), quota}
