-- A job's credit movements, included by the scripts that make them as part of a larger atomic
-- change: reserve_hold by create_job.lua (creating the job), settle_hold by save_job.lua (its
-- terminal save), ledger_entry also by adjust_credits.lua. One definition of each rule.
--#include clock

-- Append one ledger entry. `unit`, `quantity` and `rate` say how a priced amount was reached
-- ('' = not priced: grants, debits, releases); they are written only when given.
local function ledger_entry(ledger, kind, amount, job_id, reason, balance, reserved, at, unit,
                            quantity, rate)
  if unit ~= nil and unit ~= '' then
    redis.call('XADD', ledger, '*', 'kind', kind, 'amount', amount, 'job_id', job_id,
      'reason', reason, 'balance_after', balance, 'reserved_after', reserved, 'at', at,
      'unit', unit, 'quantity', quantity, 'rate', rate)
  else
    redis.call('XADD', ledger, '*', 'kind', kind, 'amount', amount, 'job_id', job_id,
      'reason', reason, 'balance_after', balance, 'reserved_after', reserved, 'at', at)
  end
end

-- Hold `amount` credits for a job if the tenant can afford them. A job holds at most once:
-- asking again returns the existing hold (open or already settled) and moves nothing.
-- `unit`, `quantity`, `rate` (optional) name how `amount` was priced, for the ledger entry.
-- `acct` (optional): the account's balance and reserved as the calling script just read them.
-- Returns {ok, amount, state, balance, reserved}; ok = 0 means short of credits.
local function reserve_hold(account, hold, holds, ledger, amount, job_id, reason, unit, quantity,
                            rate, acct)
  acct = acct or redis.call('HMGET', account, 'balance', 'reserved')
  local balance = tonumber(acct[1] or 0)
  local reserved = tonumber(acct[2] or 0)
  local existing = redis.call('HMGET', hold, 'amount', 'state')
  if existing[1] then
    return {1, tonumber(existing[1]), existing[2], balance, reserved}
  end
  if balance - reserved < amount then
    return {0, amount, '', balance, reserved}
  end
  local at = now_ms()
  reserved = redis.call('HINCRBY', account, 'reserved', amount)
  redis.call('HSET', hold, 'amount', amount, 'state', 'held', 'charged', 0, 'created_at', at)
  redis.call('SADD', holds, job_id)
  ledger_entry(ledger, 'reserve', amount, job_id, reason, balance, reserved, at, unit, quantity,
    rate)
  return {1, amount, 'held', balance, reserved}
end

-- (Negations are written `0 - x`: Lua renders -0 as "-0", which HINCRBY refuses.)
-- Settle a job's open hold, once: 'charge' takes the charged amount (at most the hold, all
-- of it when `amount` is '') off the balance and releases the rest; 'release' releases it
-- all. A missing or settled hold moves nothing. The settled hold is kept `settled_ttl_s` so
-- late duplicates stay no-ops. `unit`, `quantity`, `rate` (optional) name how the charged
-- amount was priced; the charge entry carries them, and the release of the rest (the refund)
-- follows it in the same script. Returns the credits charged (charge) or released (release).
local function settle_hold(account, hold, holds, ledger, mode, amount, job_id, reason,
                           settled_ttl_s, unit, quantity, rate)
  local current = redis.call('HMGET', hold, 'amount', 'state')
  if not current[1] or current[2] ~= 'held' then
    return 0
  end
  local at = now_ms()
  local held = tonumber(current[1])
  local charged = 0
  local balance
  if mode == 'charge' then
    charged = held
    if amount ~= '' and tonumber(amount) < held then
      charged = tonumber(amount)
    end
    balance = redis.call('HINCRBY', account, 'balance', 0 - charged)
  else
    balance = tonumber(redis.call('HGET', account, 'balance') or 0)
  end
  -- the whole hold leaves `reserved` at once; the charge's entry says what it was in between
  local rest = held - charged
  local reserved = redis.call('HINCRBY', account, 'reserved', 0 - held)
  if mode == 'charge' then
    ledger_entry(ledger, 'charge', charged, job_id, reason, balance, reserved + rest, at, unit,
      quantity, rate)
  end
  if mode == 'release' or rest > 0 then
    ledger_entry(ledger, 'release', rest, job_id, reason, balance, reserved, at)
  end
  local state = 'released'
  if mode == 'charge' then
    state = 'charged'
  end
  redis.call('HSET', hold, 'state', state, 'charged', charged, 'settled_at', at)
  redis.call('EXPIRE', hold, settled_ttl_s)
  redis.call('SREM', holds, job_id)
  if mode == 'charge' then
    return charged
  end
  return rest
end
