-- POST /v1/reads, multipart: metadata with the car's plate, and a JPEG photo (BENCH_PHOTO, ~100 KB).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require("common")

local run = os.getenv("BENCH_RUN")
local unit = os.getenv("BENCH_UNIT")
local boundary = "wrkbenchboundary7d2f"
local n = 0
local photo

function init(args)
  math.randomseed(os.time() + id * 7919)
  local f = assert(io.open(os.getenv("BENCH_PHOTO"), "rb"))
  photo = f:read("*a")
  f:close()
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
  wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
end

function request()
  n = n + 1
  local meta = string.format(
    '{"client_read_id":"%s-%d-%d","unit":"%s","camera":"front","captured_at":"%s",' ..
    '"lat":45.0%d,"lon":-93.2%d,"plate":"B%06d","plate_confidence":0.9,"state":"MN"}',
    run, id, n, unit, os.date("!%Y-%m-%dT%H:%M:%SZ"), math.random(0, 9999), math.random(0, 9999),
    math.random(0, 999999))
  local body = "--" .. boundary .. '\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n' .. meta ..
    "\r\n--" .. boundary .. '\r\nContent-Disposition: form-data; name="photo"; filename="p.jpg"\r\n' ..
    "Content-Type: image/jpeg\r\n\r\n" .. photo .. "\r\n--" .. boundary .. "--\r\n"
  return wrk.format("POST", "/v1/reads", nil, body)
end
