"""A local HTTP stand-in for Personalize's `personalize-events` endpoint (PutEvents, PutItems, PutUsers).

boto3 pointed at it (`endpoint_url`, i.e. the PERSONALIZE_EVENTS_ENDPOINT_URL setting) sends its
ordinary signed REST-JSON requests; the stub accepts any signature, records each accepted request's
body and answers `{}` as Personalize does (`GET /_stats` counts them). `throttle_next(n)` makes the
next n requests fail with Personalize's ThrottlingException (HTTP 400), so a worker in another
process can be slowed down without sharing a botocore Stubber; `hold()` keeps accepted requests
waiting for their answer until `release()` (a worker can be killed while it waits for AWS). Used
by the broker tests and by
benchmarks/outbox_throughput.py.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["PersonalizeEventsStub"]

_OPERATIONS = {"/events": "PutEvents", "/items": "PutItems", "/users": "PutUsers"}


class PersonalizeEventsStub:
    """A threaded HTTP server on 127.0.0.1 recording the PutEvents / PutItems / PutUsers calls it accepted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._throttle = 0
        self._released = threading.Event()
        self._released.set()
        self.held = 0
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.throttled = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                operation = _OPERATIONS.get(self.path.split("?", 1)[0])
                if operation is None:
                    self._answer(404, {"message": f"no such path {self.path}"}, "ResourceNotFoundException")
                    return
                with stub._lock:
                    if stub._throttle > 0:
                        stub._throttle -= 1
                        stub.throttled += 1
                        throttled = True
                    else:
                        stub.requests.append((operation, json.loads(body or b"{}")))
                        throttled = False
                        stub.held += not stub._released.is_set()
                if not throttled:
                    stub._released.wait(timeout=60)  # held: AWS took the request, its answer is late
                if throttled:
                    self._answer(400, {"message": "Rate exceeded"}, "ThrottlingException")
                else:
                    self._answer(200, {})

            def do_GET(self) -> None:
                """`GET /_stats`: calls and events accepted so far (for a stub run in another process)."""
                if self.path != "/_stats":
                    self._answer(404, {"message": f"no such path {self.path}"}, "ResourceNotFoundException")
                    return
                counts = stub.event_id_counts()
                self._answer(
                    200,
                    {
                        "calls": len(stub.requests),
                        "events": sum(counts.values()),
                        "distinct_events": len(counts),
                        "throttled": stub.throttled,
                    },
                )

            def _answer(self, status: int, payload: dict[str, Any], error_type: str = "") -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if error_type:
                    self.send_header("x-amzn-ErrorType", error_type)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The endpoint URL to give boto3 (`http://127.0.0.1:<port>`)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> PersonalizeEventsStub:
        """Serve in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def throttle_next(self, count: int) -> None:
        """Answer the next `count` requests with ThrottlingException instead of accepting them."""
        with self._lock:
            self._throttle = count

    def hold(self) -> None:
        """Record the following requests as accepted but answer none of them until `release()`."""
        with self._lock:
            self._released.clear()

    def release(self) -> None:
        """Answer the held requests (and the following ones at once)."""
        self._released.set()

    def reset(self) -> None:
        """Forget recorded requests, pending throttling and holding."""
        with self._lock:
            self.requests.clear()
            self._throttle = 0
            self.throttled = 0
            self.held = 0
        self._released.set()

    def event_ids(self) -> list[str]:
        """The eventIds of every accepted PutEvents call, in arrival order (repeats included)."""
        with self._lock:
            return [
                event.get("eventId", "")
                for operation, body in self.requests
                if operation == "PutEvents"
                for event in body.get("eventList", [])
            ]

    def event_id_counts(self) -> Counter[str]:
        """How many times each eventId arrived."""
        return Counter(self.event_ids())

    def calls(self, operation: str) -> list[dict[str, Any]]:
        """The accepted request bodies of one operation (PutEvents, PutItems, PutUsers)."""
        with self._lock:
            return [body for name, body in self.requests if name == operation]
