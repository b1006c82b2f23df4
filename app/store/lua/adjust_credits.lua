-- Move an open hold to a new amount. Raising it needs the difference to be available;
-- when it is not, nothing changes and the old hold stays. An unchanged amount writes nothing.
-- Returns {ok, amount_held, state, balance, reserved}; ok = 0 short of credits (amount_held
-- is then the old hold), ok = -1 no open hold (state is the settled state or '').
-- KEYS: account, hold, ledger
-- ARGV: new_amount, job_id, reason
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
  local t = redis.call('TIME')
  local at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  reserved = redis.call('HINCRBY', KEYS[1], 'reserved', delta)
  redis.call('HSET', KEYS[2], 'amount', ARGV[1])
  redis.call('XADD', KEYS[3], '*', 'kind', 'adjust', 'amount', delta, 'job_id', ARGV[2],
    'reason', ARGV[3], 'balance_after', balance, 'reserved_after', reserved, 'at', at)
end
return {1, old + delta, 'held', balance, reserved}
