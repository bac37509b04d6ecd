-- wrk script for scripts/bench.sh: each request takes the next "<token> <path>" line of the
-- file named by BENCH_TARGETS, so requests rotate over the seeded users (and their task ids).
-- `done` prints one WRK line that bench.sh reads.
local targets = {}
local next_target = 0

function init(args)
  for line in io.lines(os.getenv("BENCH_TARGETS")) do
    local token, path = line:match("^(%S+)%s+(%S+)$")
    if token then
      targets[#targets + 1] = { path = path, headers = { ["Authorization"] = "Bearer " .. token } }
    end
  end
  -- threads start at different users
  next_target = math.random(#targets) - 1
end

function request()
  next_target = next_target % #targets + 1
  local t = targets[next_target]
  return wrk.format("GET", t.path, t.headers)
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end
