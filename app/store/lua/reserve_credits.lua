-- Hold credits for a job if the tenant can afford them (see lib/credits.lua reserve_hold).
-- Returns {ok, amount, state, balance, reserved}; ok = 0 means short of credits.
-- KEYS: account, hold, holds, ledger
-- ARGV: amount, job_id, reason, unit, quantity, rate ('' = not priced)
--#include credits
return reserve_hold(KEYS[1], KEYS[2], KEYS[3], KEYS[4], tonumber(ARGV[1]), ARGV[2], ARGV[3],
  ARGV[4], ARGV[5], ARGV[6])
