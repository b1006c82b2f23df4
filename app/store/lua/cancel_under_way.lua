-- Cancel a job whose submission is under way (a worker holds its lease, its attempt is
-- `submitting`: the upstream has not answered), leaving the answer to that worker. The job is
-- saved canceled and marked `awaiting`; its credit hold stays open, the worker keeps its lease
-- and the job its place among the leases, so that the save recording the upstream's answer
-- settles the hold, appends the job to the upstream-spend stream and queues its webhook, once
-- (settle_late_answer.lua). Should the worker die, its lease lapses and claim_jobs.lua hands
-- the job to another worker, which settles it without an answer.
-- The tenant's job slot is given back now: the job is finished as far as the tenant goes.
-- Refused, writing nothing, when the job is gone, is no longer held under the lease the cancel
-- read ('lease_lost'), is finished ('terminal') or moved since it was read ('stale').
-- KEYS: job, slots
-- ARGV: expected_version, lease_token, body, status, ttl_s, channel, job_id
-- Returns the new version.
--#include job_state
local cur, refused = writable_job(KEYS[1], ARGV[1], ARGV[2])
if not cur then
  return refused
end
local version = tonumber(cur[1]) + 1
redis.call('HSET', KEYS[1], 'body', ARGV[3], 'status', ARGV[4], 'version', version,
  'awaiting', 1)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZREM', KEYS[2], ARGV[7])
redis.call('PUBLISH', ARGV[6], ARGV[4])
return version
