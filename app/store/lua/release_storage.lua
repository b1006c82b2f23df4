-- A blob's bytes are gone (swept, or never written): take its entry off the schedule, give
-- its bytes back to the tenant's quota and drop its metadata. Idempotent: only the call that
-- removes the entry counts the bytes. Returns 1 for that call, else 0.
-- KEYS: blob_expiries, storage_used, metadata
-- ARGV: member, bytes
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('DEL', KEYS[3])
if redis.call('DECRBY', KEYS[2], ARGV[2]) <= 0 then
  redis.call('DEL', KEYS[2])
end
return 1
