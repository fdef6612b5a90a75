-- POST /v1/agents/openalpr/<token>: alprd `alpr_results` bodies from many agents (BENCH_TOKENS, comma-separated).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require("common")

local run = os.getenv("BENCH_RUN")
local tokens = {}
local n = 0

function init(args)
  math.randomseed(os.time() + id * 7919)
  for t in string.gmatch(os.getenv("BENCH_TOKENS"), "[^,]+") do
    table.insert(tokens, t)
  end
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  local agent = (n + id) % #tokens + 1
  local plate = string.format("%s%06d", string.sub("ABCDEFGH", n % 8 + 1, n % 8 + 1), math.random(0, 999999))
  local at = os.time() * 1000
  local body = string.format(
    '{"version":2,"data_type":"alpr_results","epoch_time":%d,"img_width":1280,"img_height":960,' ..
    '"processing_time_ms":252.1,"regions_of_interest":[{"x":0,"y":0,"width":1280,"height":960}],' ..
    '"results":[{"plate":"%s","confidence":89.2,"matches_template":0,"plate_index":0,"region":"",' ..
    '"region_confidence":0,"processing_time_ms":25.3,"requested_topn":5,"coordinates":[{"x":905,"y":253},' ..
    '{"x":980,"y":250},{"x":981,"y":287},{"x":907,"y":290}],"candidates":[{"plate":"%s","confidence":89.2,' ..
    '"matches_template":0}]}],"uuid":"%s-%d-%d","camera_id":1,"site_id":"bench-%d"}',
    at, plate, plate, run, id, n, agent)
  return wrk.format("POST", "/v1/agents/openalpr/" .. tokens[agent], nil, body)
end
