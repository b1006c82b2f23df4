-- Settle a job's open hold once (see lib/credits.lua settle_hold).
-- KEYS: account, hold, holds, ledger
-- ARGV: mode ('charge' | 'release'), amount ('' = the whole hold), job_id, reason,
--       settled_ttl_s, unit, quantity, rate ('' = not priced)
--#include credits
return settle_hold(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],
  ARGV[6], ARGV[7], ARGV[8])
