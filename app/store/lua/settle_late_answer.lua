-- Record the upstream's answer to the submission a canceled job awaits (cancel_under_way.lua)
-- and settle what the cancel left open, once: only while the job is `awaiting` and held under
-- the caller's lease. Writes the record; charges or releases the credit hold as save_job.lua
-- settles a terminal job's; appends the job to the upstream-spend stream with the credits
-- charged; queues its webhook; takes the lease and the job off the queues. The job's status
-- and its expiry are the cancel's.
-- Refused, writing nothing: 'missing', 'answered' (nothing awaits an answer any more: settled
-- already), 'lease_lost' (another worker holds the job now).
-- KEYS: job, due, leases, credit_account, credit_hold, credit_holds, credit_ledger,
--       webhooks_due, spend
-- ARGV: lease_token, body, job_id, settle ('charge' | 'release'), settle_reason,
--       settled_ttl_s, charge_amount ('' = the whole hold; at most the hold), unit, quantity,
--       rate ('' = not priced), spend_record (JSON), spend_max_len,
--       webhook_due_ms ('' = no webhook), webhook_member, channel, status
-- Returns {new_version, credits_settled}.
--#include credits
--#include spend
local cur = redis.call('HMGET', KEYS[1], 'version', 'lease', 'awaiting')
if not cur[1] then
  return redis.error_reply('missing')
end
if not cur[3] then
  return redis.error_reply('answered')
end
if cur[2] ~= ARGV[1] then
  return redis.error_reply('lease_lost')
end
local id = ARGV[3]
local settled = settle_hold(KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[4], ARGV[7], id, ARGV[5],
  ARGV[6], ARGV[8], ARGV[9], ARGV[10])
local version = tonumber(cur[1]) + 1
redis.call('HSET', KEYS[1], 'body', ARGV[2], 'version', version)
redis.call('HDEL', KEYS[1], 'lease', 'awaiting')
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
append_spend(KEYS[9], ARGV[12], id, ARGV[4], settled, ARGV[11])
if ARGV[13] ~= '' then
  redis.call('ZADD', KEYS[8], ARGV[13], ARGV[14])
end
redis.call('PUBLISH', ARGV[15], ARGV[16])
return {version, settled}
