-- Take one of `limit` concurrency slots for a holder (see lib/slots.lua take_slot).
-- Returns 1 when the holder has a slot, 0 when all are taken.
-- KEYS: slots
-- ARGV: holder, limit, ttl_ms
--#include slots
return take_slot(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
