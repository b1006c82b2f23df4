-- The Redis clock, read once per script: every rule a script applies sees the same "now",
-- and a script that applies several (a job's creation: its rate, its slot, its hold) asks
-- the server for the time once.
local clock_us = nil

local function now_us()
  if clock_us == nil then
    local t = redis.call('TIME')
    clock_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return clock_us
end

local function now_ms()
  return math.floor(now_us() / 1000)
end
