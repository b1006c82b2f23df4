-- Add credits to a tenant's balance and append the ledger entry.
-- KEYS: account, ledger
-- ARGV: amount, reason, the largest balance allowed
-- Returns {balance, reserved, 1}; {balance, reserved, 0} (nothing changed) when the grant
-- would take the balance over the largest allowed.
--#include clock
local current = tonumber(redis.call('HGET', KEYS[1], 'balance') or '0')
if current + tonumber(ARGV[1]) > tonumber(ARGV[3]) then
  return {current, tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0'), 0}
end
local at = now_ms()
local balance = redis.call('HINCRBY', KEYS[1], 'balance', ARGV[1])
local reserved = redis.call('HINCRBY', KEYS[1], 'reserved', 0)
redis.call('XADD', KEYS[2], '*', 'kind', 'grant', 'amount', ARGV[1], 'job_id', '',
  'reason', ARGV[2], 'balance_after', balance, 'reserved_after', reserved, 'at', at)
return {balance, reserved, 1}
