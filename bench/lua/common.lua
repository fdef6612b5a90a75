-- Shared by the wrk scripts: a thread id for unique client ids, and a JSON summary on stdout at the end.
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end

function summary_json(summary, latency)
  local e = summary.errors
  io.write(string.format(
    '\n{"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_ms":%.2f,"p95_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end

function done(summary, latency, requests)
  summary_json(summary, latency)
end

-- Pacing. BENCH_INTERVAL_US: this thread's interval between requests (the harness derives it from the rate asked
-- for and wrk's threads), so the offered load is a rate, not "as fast as answered"; latency is still timed from
-- each request's own send. A thread that falls more than a second behind its schedule starts over from now (the
-- realized rate then shows the shortfall). BENCH_DELAY_MS: a fixed wait before each request on a connection.
local interval_us = tonumber(os.getenv("BENCH_INTERVAL_US") or "0")
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if interval_us > 0 then
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk_id, bench_timespec *tp);
  ]]
  local ts = ffi.new("bench_timespec")
  local function now_us()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
  end
  local due = nil
  function delay()
    local now = now_us()
    if due == nil or due < now - 1e6 then
      due = now
    end
    due = due + interval_us
    local wait = (due - now) / 1000
    if wait < 0 then
      return 0
    end
    return wait
  end
elseif pause > 0 then
  function delay()
    return pause
  end
end
