"""A log of the API calls the emulator answered, for benchmarks and API budgets.

Each call is kept as ``[started, ended, service, operation, agent, status, subject]``:
epoch seconds when the request arrived and when its answer was ready, the
SigV4 signing service (``rds``, ``ecs``, ``logs``, ...), the operation
(``X-Amz-Target`` suffix or the Query protocol's ``Action``), the first word
of the User-Agent (``aws-cli/1.46.3``, ``aws-sdk-rust/...``, ``Boto3/...``),
the HTTP status and the first 400 characters of the request body (enough to
tell which snapshot or task a describe call asked about).

``GET /_emulator/calls[?since=EPOCH]`` answers ``{"calls": [...]}``. The log
only grows (a benchmark of a few thousand calls needs a few MB).
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import parse_qs

SUBJECT_CHARS = 400


def _service(environ: dict[str, Any]) -> str:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        return auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")[3]
    except IndexError:
        return "unsigned"


def _operation(environ: dict[str, Any], body: bytes) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    query_action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if query_action:
        return query_action[0]
    return f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '')}"


class CallLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[list[Any]] = []

    def record(self, environ: dict[str, Any], body: bytes, started: float, status: int) -> None:
        agent = (environ.get("HTTP_USER_AGENT", "") or "-").split(" ", 1)[0]
        entry = [
            round(started, 4),
            round(time.time(), 4),
            _service(environ),
            _operation(environ, body),
            agent,
            status,
            body[:SUBJECT_CHARS].decode("utf-8", "replace"),
        ]
        with self._lock:
            self._calls.append(entry)

    def view(self, query_string: str = "") -> dict[str, Any]:
        since = parse_qs(query_string).get("since")
        floor = float(since[0]) if since else 0.0
        with self._lock:
            calls = [c for c in self._calls if c[0] >= floor]
        return {"calls": calls}
