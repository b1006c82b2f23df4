-- A tenant's stored bytes against its storage quota, included by the scripts that count new
-- blobs: reserve_storage.lua (before their bytes are written) and save_job.lua (a job's
-- outputs written under ids whose deletion its creation scheduled). One rule for both.

-- The bytes the tenant keeps and its quota: its record's storage_quota_bytes, else the default.
local function storage_room(used_key, tenant_key, default_quota)
  local used = tonumber(redis.call('GET', used_key) or '0')
  local quota = tonumber(redis.call('HGET', tenant_key, 'storage_quota_bytes') or default_quota)
  return used, quota
end
