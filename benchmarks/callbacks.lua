-- wrk script of benchmarks/callbacks.py: POSTs stage callbacks (JSON, Bearer token), spread over RUNS runs x
-- STAGES stage names so that rows are created, then updated. Each thread walks the (run, stage) pairs from
-- its own offset; done() prints how many requests each thread made, so the caller knows which pairs were sent,
-- and which pairs each thread saw answered 200 or 201 (those must be in the database afterwards; a request still
-- in flight when wrk stops may or may not be).
-- Environment: BENCH_TOKEN, BENCH_PATH_PREFIX (/api/v1/projects/<slug>/runs/), BENCH_RUNS, BENCH_STAGES,
-- BENCH_OFFSET (added to every thread's start, so a second wrk run continues where the first stopped).

local token = os.getenv("BENCH_TOKEN")
local prefix = os.getenv("BENCH_PATH_PREFIX")
local runs = tonumber(os.getenv("BENCH_RUNS"))
local stages = tonumber(os.getenv("BENCH_STAGES"))
local offset = tonumber(os.getenv("BENCH_OFFSET") or "0")
local statuses = {"running", "success", "failed"}
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  -- threads start far apart on the ring of pairs, so that they do not all hammer the same run
  start = offset + id * 7919
  count = 0
  acked = {}
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
end

function request()
  local pair = (start + count) % (runs * stages)
  local run = pair % runs + 1
  local stage = math.floor(pair / runs)
  local status = statuses[(math.floor((start + count) / (runs * stages)) + stage) % 3 + 1]
  count = count + 1
  local body = string.format(
    '{"name":"Stage %d","status":"%s","order":%d,"started_at":"2024-05-01T10:%02d:00Z","log_excerpt":"request %d"}',
    stage, status, stage, stage % 60, count)
  return wrk.format("POST", prefix .. run .. "/stages/", headers, body)
end

function response(status, headers, body)
  if status == 200 or status == 201 then
    local name = body:match('"name"%s*:%s*"Stage (%d+)"')
    local run = body:match('"build_number"%s*:%s*(%d+)')
    if name and run then
      acked[run .. ":" .. name] = true
    end
  end
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("SENT thread=%d start=%d count=%d\n", thread:get("id"), thread:get("start"),
      thread:get("count")))
    local pairs_acked = {}
    for pair, _ in pairs(thread:get("acked")) do
      table.insert(pairs_acked, pair)
    end
    io.write(string.format("ACKED thread=%d %s\n", thread:get("id"), table.concat(pairs_acked, ",")))
  end
end
