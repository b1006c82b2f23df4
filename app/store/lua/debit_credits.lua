-- Take credits off a tenant's balance, only out of what is available (balance - reserved),
-- and append the ledger entry. Returns {1, balance, reserved} or {0, balance, reserved}.
-- KEYS: account, ledger
-- ARGV: amount, reason
--#include clock
local acct = redis.call('HMGET', KEYS[1], 'balance', 'reserved')
local balance = tonumber(acct[1] or 0)
local reserved = tonumber(acct[2] or 0)
local amount = tonumber(ARGV[1])
if balance - reserved < amount then
  return {0, balance, reserved}
end
local at = now_ms()
balance = redis.call('HINCRBY', KEYS[1], 'balance', -amount)
redis.call('XADD', KEYS[2], '*', 'kind', 'debit', 'amount', amount, 'job_id', '',
  'reason', ARGV[2], 'balance_after', balance, 'reserved_after', reserved, 'at', at)
return {1, balance, reserved}
