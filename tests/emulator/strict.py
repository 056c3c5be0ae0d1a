"""Strict mode: every request checked against AWS's service model
(validate.py) and the catalogue of prose rules (rules.py) before anything
answers it. A request that breaks either gets the error that service gives,
in its protocol; nothing else happens.

Lax mode (``server.py --lax``, ``FERRY_EMULATOR_LAX=1`` in the server's
environment, or ``{"lax": true}`` in ``POST /_emulator/config``) skips both,
to show what moto and the emulator's additions accept on their own.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any
from xml.sax.saxutils import escape

import rules
import validate
from validate import Rejection, Request
from wire import region_of

Response = tuple[int, list[tuple[str, str]], bytes]


def lax_from_environment(environ: dict[str, str] | None = None) -> bool:
    """FERRY_EMULATOR_LAX=1 (or true/on/yes) starts the server in lax mode."""
    value = (environ if environ is not None else os.environ).get("FERRY_EMULATOR_LAX", "")
    return value.strip().lower() in ("1", "true", "on", "yes")


def answer(environ: dict[str, Any], request: Request, e: Rejection) -> Response:
    """The rejection in the request's protocol."""
    if request.protocol == "query":
        xmlns = {"rds": "http://rds.amazonaws.com/doc/2014-10-31/", "cloudformation": "http://cloudformation.amazonaws.com/doc/2010-05-15/"}
        xml = (
            f'<ErrorResponse xmlns="{xmlns.get(request.service, "")}"><Error><Type>Sender</Type>'
            f"<Code>{escape(e.code)}</Code><Message>{escape(e.message)}</Message></Error>"
            "<RequestId>emulator-strict</RequestId></ErrorResponse>"
        )
        return e.status, [("Content-Type", "text/xml")], xml.encode()
    if request.protocol == "rest-xml":
        import s3_cond

        return s3_cond.error(environ, e.status, e.code, e.message)
    version = validate.service_model(request.service).metadata.get("jsonVersion", "1.1")
    payload: dict[str, Any] = {"__type": e.code, "message": e.message}
    if request.service == "apprunner":
        payload["Message"] = e.message
    payload.update(e.extra)
    return e.status, [("Content-Type", f"application/x-amz-json-{version}")], json.dumps(payload).encode()


_LOG_LOCK = threading.Lock()


def _report(request: Request, e: Rejection, body: bytes) -> None:
    """Every rejection goes to stderr; with FERRY_EMULATOR_REJECT_LOG=<file> also one
    JSON line there (the file outlives a test's temporary directory)."""
    line = f"emulator: strict: refused {request.service} {request.operation}: {e.code}: {e.message}"
    print(line, file=sys.stderr, flush=True)
    path = os.environ.get("FERRY_EMULATOR_REJECT_LOG")
    if path:
        record = {
            "time": time.time(),
            "pid": os.getpid(),
            "service": request.service,
            "operation": request.operation,
            "code": e.code,
            "message": e.message,
            "request": body[:2000].decode("utf-8", "replace") if request.protocol != "rest-xml" else "",
        }
        with _LOG_LOCK, open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


class Strict:
    def __init__(self, settings: Any, ecs: Any = None, apprunner: Any = None) -> None:
        self.settings = settings
        self.ecs = ecs
        self.apprunner = apprunner

    def check(self, environ: dict[str, Any], body: bytes) -> Response | None:
        """None when the request may go on; else the service's error answer."""
        if self.settings.get("lax"):
            return None
        protocol_errors: list[validate.Violation] = []
        request = validate.parse(environ, body, protocol_errors)
        if request is None:
            return None
        found = validate.violations(request, protocol_errors)
        try:
            if found:
                raise validate.rejection(request, found)
            ctx = rules.Context(
                region=region_of(environ), operation=request.operation, ecs=self.ecs, apprunner=self.apprunner
            )
            rules.check(request.service, request.operation, request.params, ctx)
        except Rejection as e:
            _report(request, e, body)
            return answer(environ, request, e)
        return None
