"""A stand-in portal for the imitations' tests: an HTTP server that records what they send it."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Recorder:
    """A stand-in portal: records every POST (Jenkins callbacks, GitLab webhooks) and answers `status` (or a
    status per attempt)."""

    def __init__(self, statuses=(201,)):
        self.statuses = list(statuses)
        self.calls: list[dict] = []
        self.permission = (200, {"allowed": True, "promotion": None})  # how GETs (the deploy permission) answer
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                content_type = self.headers.get("Content-Type", "")
                call = {"path": self.path, "headers": dict(self.headers), "auth": self.headers.get("Authorization"),
                        "content_type": content_type,
                        "json": json.loads(body) if content_type.startswith("application/json") else None,
                        "body": body}
                recorder.calls.append(call)
                status = recorder.statuses.pop(0) if len(recorder.statuses) > 1 else recorder.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def do_GET(self):  # noqa: N802
                recorder.calls.append({"method": "GET", "path": self.path, "headers": dict(self.headers),
                                       "auth": self.headers.get("Authorization"), "json": None, "body": b""})
                status, answer = recorder.permission
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def paths(self, prefix="/api/v1/projects/shop/"):
        return [call["path"].removeprefix(prefix) for call in self.calls]

    def stage_updates(self):
        return [(c["json"]["name"], c["json"]["status"]) for c in self.calls if c["path"].endswith("/stages/")]
