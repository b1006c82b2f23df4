-- Resolve an API key (by its hash) to an active tenant, and note when the key was last used.
-- KEYS: api_key
-- ARGV: now_s, tenant_key_prefix
local row = redis.call('HMGET', KEYS[1], 'tenant', 'key_id', 'revoked')
if not row[1] or row[3] == '1' then
  return nil
end
local tenant = redis.call('HMGET', ARGV[2] .. row[1], 'name', 'status')
if not tenant[1] then
  return nil
end
redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1])
return {row[1], tenant[1], tenant[2] or 'active', row[2]}
