-- Move an open hold to a new amount. Raising it needs the difference to be available;
-- when it is not, nothing changes and the old hold stays. An unchanged amount writes nothing.
-- Returns {ok, amount_held, state, balance, reserved}; ok = 0 short of credits (amount_held
-- is then the old hold), ok = -1 no open hold (state is the settled state or '').
-- KEYS: account, hold, ledger
-- ARGV: new_amount, job_id, reason, unit, quantity, rate ('' = not priced)
--#include credits
local hold = redis.call('HMGET', KEYS[2], 'amount', 'state')
if not hold[1] or hold[2] ~= 'held' then
  return {-1, 0, hold[2] or '', 0, 0}
end
local acct = redis.call('HMGET', KEYS[1], 'balance', 'reserved')
local balance = tonumber(acct[1] or 0)
local reserved = tonumber(acct[2] or 0)
local old = tonumber(hold[1])
local delta = tonumber(ARGV[1]) - old
if delta > 0 and balance - reserved < delta then
  return {0, old, 'held', balance, reserved}
end
if delta ~= 0 then
  reserved = redis.call('HINCRBY', KEYS[1], 'reserved', delta)
  redis.call('HSET', KEYS[2], 'amount', ARGV[1])
  ledger_entry(KEYS[3], 'adjust', delta, ARGV[2], ARGV[3], balance, reserved, now_ms(), ARGV[4],
    ARGV[5], ARGV[6])
end
return {1, old + delta, 'held', balance, reserved}
