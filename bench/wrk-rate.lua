-- wrk script: POST $WRK_BODY_FILE (Content-Type: application/json) at a fixed rate. Each connection waits
-- $WRK_DELAY_MS between responses and its next request (wrk's delay()), so C connections hold about
-- C * 1000 / DELAY requests per second; the latency wrk reports excludes the wait. Prints one JSON line at the end.
local path = os.getenv("WRK_BODY_FILE")
if path then
  local f = assert(io.open(path, "rb"))
  wrk.body = f:read("*a")
  f:close()
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0")

delay = function()
  return pause
end

done = function(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    'WRK_JSON {"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"errors":%d,"non2xx":%d,"requests":%d,"max_ms":%.3f}\n',
    summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status, summary.requests, latency.max / 1000))
end
