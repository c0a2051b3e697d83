-- wrk script of benchmarks/callbacks.py for the baseline: the same POST (JSON body, Bearer header) to the
-- minimal Django JSON view.
local token = os.getenv("BENCH_TOKEN")
local body = '{"name":"Stage 1","status":"running","order":1,"started_at":"2024-05-01T10:01:00Z","log_excerpt":"x"}'
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
