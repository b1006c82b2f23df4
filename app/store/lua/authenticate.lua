-- Resolve an API key (by its hash) to its tenant, and note when the key was last used.
-- KEYS: api_key
-- ARGV: now_s, tenant_key_prefix
-- Returns nil for an unknown or revoked key, else
-- {tenant_id, name, status, key_id, rpm, concurrency, charge_accepted_work, webhook_events,
--  result_cache_ttl_s, cache_hit_percent}.
local row = redis.call('HMGET', KEYS[1], 'tenant', 'key_id', 'revoked')
if not row[1] or row[3] == '1' then
  return nil
end
local tenant = redis.call('HMGET', ARGV[2] .. row[1], 'name', 'status', 'rate_limit_rpm', 'max_concurrent_jobs',
  'charge_accepted_work', 'webhook_events', 'result_cache_ttl_s', 'cache_hit_percent')
if not tenant[1] then
  return nil
end
redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1])
return {row[1], tenant[1], tenant[2] or 'active', row[2], tenant[3] or '', tenant[4] or '',
  tenant[5] or '', tenant[6] or '', tenant[7] or '', tenant[8] or ''}
