-- Requests per second once every connection is up, for wrk (`wrk -s steady.lua URL -- WARMUP`).
-- wrk's own figure counts from before its first connect, so a run of HTTPS pays for its
-- handshakes too: the goals compare servers with keep-alive, where a connection's handshake is
-- paid once, not once per measurement. Responses are counted from WARMUP seconds after the start.
local ffi = require("ffi") -- wrk runs LuaJIT; plain Lua has no clock finer than a second
ffi.cdef([[
  struct timespec { long tv_sec; long tv_nsec; };
  int clock_gettime(int clock, struct timespec *now);
]])
local CLOCK_MONOTONIC = 1
local clock = ffi.new("struct timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) / 1e9
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Each thread's own Lua state: `done` reads these globals back through `thread:get`.
function init(args)
  warmup = tonumber(args[1])
  start = now()
  counted = 0
end

function response()
  local t = now()
  if t - start < warmup then
    return
  end
  if first == nil then
    first = t
  else
    counted = counted + 1
    last = t
  end
end

function done()
  local rate = 0
  for _, thread in ipairs(threads) do
    local first, last = thread:get("first"), thread:get("last")
    if last ~= nil and last > first then
      rate = rate + thread:get("counted") / (last - first)
    end
  end
  io.write(string.format("Steady requests/sec: %.2f\n", rate))
end
