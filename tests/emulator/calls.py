"""A log of the API calls the emulator answered, for benchmarks and API budgets.

Each call is kept as ``[started, ended, service, operation, agent, status, subject, denied]``:
epoch seconds when the request arrived and when its answer was ready, the
SigV4 signing service (``rds``, ``ecs``, ``logs``, ``s3``, ...), the operation
(``X-Amz-Target`` suffix, the Query protocol's ``Action``, or for S3 the REST
operation: ``PutObject``, ``GetObject``, ``ListObjectsV2``, ...), the first word
of the User-Agent (``aws-cli/1.46.3``, ``aws-sdk-rust/...``, ``Boto3/...``),
the HTTP status (0: dropped without an answer, ``s3_fault`` = ``reset``) and
the first 400 characters of the request body (enough to tell which snapshot or
task a describe call asked about), and ``denied``: null, or the AccessDenied
message when IAM (iam.py) refused the call.

``GET /_emulator/calls[?since=EPOCH]`` answers ``{"calls": [...]}``. The log
only grows (a benchmark of a few thousand calls needs a few MB).
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import parse_qs

import s3_cond
from wire import signing_service

SUBJECT_CHARS = 400


def _service(environ: dict[str, Any]) -> str:
    return signing_service(environ) or "unsigned"


def _operation(environ: dict[str, Any], body: bytes) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    if s3_cond.is_s3(environ):
        return s3_cond.operation(environ)
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
            environ.get("emulator.iam_denied"),
        ]
        with self._lock:
            self._calls.append(entry)

    def view(self, query_string: str = "") -> dict[str, Any]:
        since = parse_qs(query_string).get("since")
        floor = float(since[0]) if since else 0.0
        with self._lock:
            calls = [c for c in self._calls if c[0] >= floor]
        return {"calls": calls}
