-- The check that comes before any write of a job's new state, one definition for the scripts
-- that make one (save_job.lua, cancel_under_way.lua): the job exists, is held as the caller
-- says, has not ended, and is at the version the caller read (an optimistic version check).
-- `lease_token`: '' = no lease needed, '-' = only while no worker holds the job ('leased'
-- otherwise), else the lease the caller holds ('lease_lost' otherwise).
-- Returns the job's {version, lease, status}, or nil and the error reply to return:
-- 'missing', 'leased', 'lease_lost', 'terminal' or 'stale'.
local function writable_job(job, expected_version, lease_token)
  local cur = redis.call('HMGET', job, 'version', 'lease', 'status')
  if not cur[1] then
    return nil, redis.error_reply('missing')
  end
  if lease_token == '-' then
    if cur[2] then
      return nil, redis.error_reply('leased')
    end
  elseif lease_token ~= '' and cur[2] ~= lease_token then
    return nil, redis.error_reply('lease_lost')
  end
  if cur[3] == 'succeeded' or cur[3] == 'failed' or cur[3] == 'canceled' then
    return nil, redis.error_reply('terminal')
  end
  if cur[1] ~= expected_version then
    return nil, redis.error_reply('stale')
  end
  return cur
end
