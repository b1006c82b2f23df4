-- Add credits to a tenant's balance and append the ledger entry.
-- KEYS: account, ledger
-- ARGV: amount, reason
local t = redis.call('TIME')
local at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local balance = redis.call('HINCRBY', KEYS[1], 'balance', ARGV[1])
local reserved = redis.call('HINCRBY', KEYS[1], 'reserved', 0)
redis.call('XADD', KEYS[2], '*', 'kind', 'grant', 'amount', ARGV[1], 'job_id', '',
  'reason', ARGV[2], 'balance_after', balance, 'reserved_after', reserved, 'at', at)
return {balance, reserved}
