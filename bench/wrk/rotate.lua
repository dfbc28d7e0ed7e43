-- Rotates requests from a generated file (one "path<TAB>bearer token[<TAB>JSON body]" per
-- line; a body makes it a POST), counts statuses and the X-Tokens-Charged header per thread,
-- and prints one JSON line at the end.
--
-- Environment:
--   BENCH_REQUESTS  the request file (required)
--   BENCH_RATE      total target requests/s; 0 or unset = as fast as possible
--   BENCH_THREADS   the -t value, to split the rate between threads
--   BENCH_STOP_MS   stop sending new requests this long after start; 0 = never
--   BENCH_THINK_MS  each connection waits this long before each request, like a user who
--                   reads the answer (k6's sleep); 0 or unset = no wait
--
-- Why a stop: wrk ends a run by closing its connections, dropping the answers still in
-- flight, yet the gateway charged for them. For the exact accounting check, the script
-- stops sending a grace period before wrk's -d ends, so every charged answer is seen.
--
-- Pacing: wrk (unlike wrk2) sends the next request on a connection as soon as the last
-- answer arrived, unless the script defines delay(). Each thread keeps its own schedule of
-- send slots, one every threads/rate seconds; a connection that becomes free takes the
-- next slot and waits until it. With enough connections this is an open-loop arrival
-- process; when the server falls behind, slots in the past are dropped (no catch-up burst),
-- so the achieved rate is reported next to the offered one.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local requests = {}
local index = 1
local interval_ms = 0
local next_slot = 0
local stop_at = math.huge
local FOREVER_MS = 3600 * 1000
statuses = {}
charged = 0

function init(args)
  local file = assert(io.open(os.getenv("BENCH_REQUESTS"), "r"))
  for line in file:lines() do
    local path, token, body = line:match("^([^\t]*)\t?([^\t]*)\t?(.*)$")
    local headers = {}
    if token and token ~= "" then
      headers["Authorization"] = "Bearer " .. token
    end
    if body and body ~= "" then
      headers["Content-Type"] = "application/json"
      table.insert(requests, wrk.format("POST", path, headers, body))
    else
      table.insert(requests, wrk.format("GET", path, headers))
    end
  end
  file:close()
  index = (id * 7919) % #requests + 1
  local rate = tonumber(os.getenv("BENCH_RATE") or "0") or 0
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1") or 1
  if rate > 0 then
    interval_ms = 1000 * nthreads / rate
  end
  local stop_ms = tonumber(os.getenv("BENCH_STOP_MS") or "0") or 0
  if stop_ms > 0 then
    stop_at = now_ms() + stop_ms
  end
end

function request()
  local r = requests[index]
  index = index + 1
  if index > #requests then
    index = 1
  end
  return r
end

local paced = (tonumber(os.getenv("BENCH_RATE") or "0") or 0) > 0
local stops = (tonumber(os.getenv("BENCH_STOP_MS") or "0") or 0) > 0
local think_ms = tonumber(os.getenv("BENCH_THINK_MS") or "0") or 0
if paced or stops or think_ms > 0 then
  function delay()
    local now = now_ms()
    if now >= stop_at then
      return FOREVER_MS
    end
    if think_ms > 0 then
      return think_ms
    end
    if next_slot < now then
      next_slot = now
    end
    local wait = next_slot - now
    next_slot = next_slot + interval_ms
    return math.floor(wait)
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then
    local price = headers["X-Tokens-Charged"] or headers["x-tokens-charged"]
    if price then
      charged = charged + tonumber(price)
    end
  end
end

local function json_counts(counts)
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests_stats)
  local total_status = {}
  local total_charged = 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total_status[status] = (total_status[status] or 0) + n
    end
    total_charged = total_charged + thread:get("charged")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us": %d, "requests": %d, "bytes": %d, "statuses": %s, '
      .. '"charged": %d, "socket_errors": {"connect": %d, "read": %d, "write": %d, '
      .. '"timeout": %d}, "latency_us": {"min": %d, "mean": %.1f, "stdev": %.1f, '
      .. '"p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d}}\n',
    summary.duration, summary.requests, summary.bytes, json_counts(total_status),
    total_charged, e.connect, e.read, e.write, e.timeout,
    latency.min, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
