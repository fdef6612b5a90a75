-- POST /v1/reads, metadata only (the car sends its plate): a unique client id per request.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require("common")

local run = os.getenv("BENCH_RUN")
local unit = os.getenv("BENCH_UNIT")
local n = 0

function init(args)
  math.randomseed(os.time() + id * 7919)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  local body = string.format(
    '{"client_read_id":"%s-%d-%d","unit":"%s","camera":"front","captured_at":"%s",' ..
    '"lat":45.0%d,"lon":-93.2%d,"plate":"B%06d","plate_confidence":0.9,"state":"MN"}',
    run, id, n, unit, os.date("!%Y-%m-%dT%H:%M:%SZ"), math.random(0, 9999), math.random(0, 9999),
    math.random(0, 999999))
  return wrk.format("POST", "/v1/reads", nil, body)
end
