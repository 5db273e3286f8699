-- wrk script: GET <prefix><project>/ over a fixed pseudo-random sequence of projects.
--
-- The sequence is the file named by the PATHS environment variable (one normalized project
-- name per line, written once by bench.py from a fixed seed), so every server gets the very
-- same requests in the same order. Each wrk thread starts at its own offset in the list.
-- ACCEPT (optional) is sent as the Accept header. There is no response() callback, so wrk
-- does not hand bodies to Lua (cheaper); wrk itself counts HTTP >= 400 as status errors.
-- done() prints one JSON line with the
-- request count, errors and latency percentiles (microseconds) for bench.py to read.

local names = {}
local prefix = os.getenv("PREFIX") or "/simple/"
local accept = os.getenv("ACCEPT") or ""

for line in io.lines(os.getenv("PATHS")) do
  names[#names + 1] = line
end

local counter = 1
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 1 + (id * 7919) % #names
  if accept ~= "" then
    wrk.headers["Accept"] = accept
  end
end

function request()
  local name = names[counter]
  counter = counter + 1
  if counter > #names then counter = 1 end
  return wrk.format("GET", prefix .. name .. "/")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
