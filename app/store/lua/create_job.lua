-- Create a job, take one of the tenant's job slots and hold its credits, atomically: all
-- happen or none. The job is due for any worker, or already leased to the caller (the API
-- runs it inline when the client waits). Fails if the id exists; answers {-1, limit} when
-- the tenant has `slot_limit` unfinished jobs, {0, available} when credits are short.
-- With a rate bucket, the request is first counted against the tenant's request rate
-- (lib/rate.lua), as its own rate check would have counted it: refused, nothing else is
-- written and the answer is {-2, remaining, retry_after_us, reset_us}; allowed, it stays
-- counted whatever the creation answers (a request refused for credits or slots was a request).
-- A job created leased may also have its output's deletion scheduled here, before any byte of
-- it exists: a blob entry of 0 bytes in the deletion schedule, which the job's terminal save
-- replaces with the output's own (save_job.lua) and which otherwise deletes whatever was
-- written under that id when it comes due (a process that died between the write and the save).
-- KEYS: job, due, leases, tenant_jobs, credit_account, credit_hold, credit_holds, credit_ledger,
--       slots, blob_expiries, rate_bucket (only read when rate_interval_us is given)
-- ARGV: body, status, tenant, created_ms, lease_token ('' = due now), lease_expiry_ms, job_id,
--       price, reason, slot_limit, slot_ttl_ms, unit, quantity, rate (how the price was
--       reached, for the reserve entry; '' = not priced), output_entry ('' = none: the
--       schedule's member for the output, <id>|0|<tenant>), output_due_ms, rate_interval_us
--       (none or '' = no rate check here), rate_burst
--#include credits
--#include slots
--#include rate
if (ARGV[17] or '') ~= '' then
  local counted = gcra(KEYS[11], tonumber(ARGV[17]), tonumber(ARGV[18]))
  if counted[1] == 0 then
    return {-2, counted[2], counted[3], counted[4]}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('exists')
end
local acct = redis.call('HMGET', KEYS[5], 'balance', 'reserved')
if tonumber(acct[1] or 0) - tonumber(acct[2] or 0) < tonumber(ARGV[8]) then
  return {0, tonumber(acct[1] or 0) - tonumber(acct[2] or 0)}
end
if take_slot(KEYS[9], ARGV[7], tonumber(ARGV[10]), tonumber(ARGV[11])) == 0 then
  return {-1, tonumber(ARGV[10])}
end
local held = reserve_hold(KEYS[5], KEYS[6], KEYS[7], KEYS[8], tonumber(ARGV[8]), ARGV[7], ARGV[9],
  ARGV[12], ARGV[13], ARGV[14], acct)
if held[1] == 0 then
  return {0, held[4] - held[5]}
end
local id = ARGV[7]
redis.call('ZADD', KEYS[4], ARGV[4], id)
if ARGV[5] == '' then
  redis.call('HSET', KEYS[1], 'body', ARGV[1], 'status', ARGV[2], 'tenant', ARGV[3], 'version', 1)
  redis.call('ZADD', KEYS[2], ARGV[4], id)
else
  redis.call('HSET', KEYS[1], 'body', ARGV[1], 'status', ARGV[2], 'tenant', ARGV[3], 'version', 1,
    'lease', ARGV[5])
  redis.call('ZADD', KEYS[3], ARGV[6], id)
end
if ARGV[15] ~= '' then
  redis.call('ZADD', KEYS[10], ARGV[16], ARGV[15])
end
return {1, held[4] - held[5]}
