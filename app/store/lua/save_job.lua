-- Write a job's new state if nobody changed it since it was read (optimistic version check)
-- and, when a lease token is given, only while the caller still holds the lease
-- (lib/job_state.lua). Terminal jobs are never rewritten here (a job canceled while its
-- submission was under way gets the upstream's answer through settle_late_answer.lua).
-- Reschedules the job, settles its credits when it ends, and announces the change —
-- atomically, so a job is charged exactly when it is saved succeeded.
-- A terminal save (ttl_s > 0) also gives the tenant's job slot back and, when the job has a
-- callback URL, queues its webhook delivery — so no finished job's webhook can be lost.
-- A charge bills `charge_amount` (the actual price; never more than the hold) and refunds the
-- rest of the hold in the same step. With a spend record, the terminal save also appends it
-- to the upstream-spend stream with the credits charged, so reconciliation sees every
-- finished job exactly once.
-- KEYS: job, due, leases, credit_account, credit_hold, credit_holds, credit_ledger, slots,
--       webhooks_due, spend
-- ARGV: expected_version, lease_token ('' = no lease needed; '-' = only while no worker holds
--       the job: refused with 'leased' otherwise), body, status,
--       schedule ('due' | 'release' | 'keep'), due_ms, ttl_s (0 = keep forever), channel, job_id,
--       settle ('' | 'charge' | 'release'), settle_reason, settled_ttl_s,
--       webhook_due_ms ('' = no webhook), charge_amount ('' = the whole hold; at most the hold),
--       unit, quantity, rate ('' = not priced), spend_record ('' = none, JSON), spend_max_len,
--       webhook_member (the delivery queued at webhook_due_ms: the job id for its end,
--       '<job id>#started' or '<job id>#progress' for those events)
-- A terminal save may also keep outputs written under ids whose deletion the job's creation
-- scheduled (create_job.lua): counted against the tenant's storage quota (lib/storage.lua),
-- their schedule entries replaced by their own (size, end of retention) and their records
-- written, all with the save or none. Past the quota nothing is written and the reply is the
-- error 'quota <used> <quota> <wanted>'; an entry no longer as the creation wrote it (a sweeper
-- claimed it) refuses with 'unscheduled'. A save after which nothing will be written under a
-- scheduled id drops its entry (`unused_entry`).
--   KEYS (continued): blob_expiries, storage_used, tenant, then one metadata key per output
--   ARGV (continued): unused_entry ('' = none: a schedule entry to drop), default_quota_bytes,
--              outputs, then per output: scheduled member, its due_ms, member, bytes,
--              expires_ms; then per metadata key: its record (JSON), ttl_s
-- Returns {new_version, credits_settled}.
--#include job_state
--#include credits
--#include storage
--#include spend
local cur, refused = writable_job(KEYS[1], ARGV[1], ARGV[2])
if not cur then
  return refused
end
local outputs = tonumber(ARGV[23] or 0)
local wanted = 0
for o = 0, outputs - 1 do
  local at = 24 + 5 * o
  if tonumber(redis.call('ZSCORE', KEYS[11], ARGV[at]) or -1) ~= tonumber(ARGV[at + 1]) then
    return redis.error_reply('unscheduled')
  end
  wanted = wanted + tonumber(ARGV[at + 3])
end
if outputs > 0 then
  local fits, used, quota = storage_fits(KEYS[12], KEYS[13], ARGV[22], wanted)
  if not fits then
    return redis.error_reply(string.format('quota %d %d %d', used, quota, wanted))
  end
  for o = 0, outputs - 1 do
    local at = 24 + 5 * o
    redis.call('ZREM', KEYS[11], ARGV[at])
    redis.call('ZADD', KEYS[11], ARGV[at + 4], ARGV[at + 2])
  end
  local records = 24 + 5 * outputs
  for r = 1, #KEYS - 13 do
    redis.call('SET', KEYS[13 + r], ARGV[records + 2 * r - 2], 'EX', ARGV[records + 2 * r - 1])
  end
  redis.call('INCRBY', KEYS[12], wanted)
end
if (ARGV[21] or '') ~= '' then
  redis.call('ZREM', KEYS[11], ARGV[21])
end
local version = tonumber(cur[1]) + 1
local id = ARGV[9]
local settled = 0
if ARGV[10] ~= '' then
  settled = settle_hold(KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[10], ARGV[14], id, ARGV[11],
    ARGV[12], ARGV[15], ARGV[16], ARGV[17])
end
redis.call('HSET', KEYS[1], 'body', ARGV[3], 'status', ARGV[4], 'version', version)
if ARGV[5] == 'due' then
  redis.call('ZADD', KEYS[2], ARGV[6], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[1], 'lease')
elseif ARGV[5] == 'release' then
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[1], 'lease')
end
if tonumber(ARGV[7]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[7])
  redis.call('ZREM', KEYS[8], id)
  if ARGV[18] ~= '' then
    append_spend(KEYS[10], ARGV[19], id, ARGV[10], settled, ARGV[18])
  end
end
if ARGV[13] ~= '' then
  redis.call('ZADD', KEYS[9], ARGV[13], ARGV[20])
end
redis.call('PUBLISH', ARGV[8], ARGV[4])
return {version, settled}
