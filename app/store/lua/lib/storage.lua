-- A tenant's stored bytes against its storage quota, included by the scripts that count new
-- blobs: reserve_storage.lua (before their bytes are written) and save_job.lua (a job's
-- outputs written under ids whose deletion its creation scheduled). One rule for both.

-- Whether `wanted` more bytes fit the tenant's quota (its record's storage_quota_bytes, else
-- the default), with the bytes it keeps and the quota.
local function storage_fits(used_key, tenant_key, default_quota, wanted)
  local used = tonumber(redis.call('GET', used_key) or '0')
  local quota = tonumber(redis.call('HGET', tenant_key, 'storage_quota_bytes') or default_quota)
  return used + wanted <= quota, used, quota
end
