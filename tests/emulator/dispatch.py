"""The WSGI application in front of moto.

Routing, first match wins:

* ``/_emulator/...``                         debug and control endpoints (JSON)
* ``X-Amz-Target: AppRunner.*``              apprunner.AppRunner
* ``X-Amz-Target: AmazonEC2ContainerServiceV20141113.{RunTask,DescribeTasks,ListTasks,StopTask}``
                                              ecs_runner.EcsRunner (RunTask goes through moto first)
* SigV4 service ``s3`` (REST-XML, no target)  s3_cond.S3Front: faults, DeleteObject ``If-Match: *``,
                                              then moto's S3 (path-style and virtual-host-style)
* everything else                            moto's own server app (RDS changes live in rds_pg's
                                              wrappers around moto's models)

Before any of these (``/_emulator`` aside), iam.Iam authorizes a request signed with a
registered access key against its policy; a denied one is answered AccessDenied here.
Then, before routing, strict.Strict checks the request against
the service model and the rule catalogue; a rejected request is answered there.

Every call outside ``/_emulator`` is counted in calls.CallLog (``GET /_emulator/calls``).

Every call into moto holds locks.MOTO_LOCK and is buffered whole.
"""

from __future__ import annotations

import io
import json
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from xml.sax.saxutils import escape

import iam
import rds_pg
import s3_cond
from apprunner import TARGET_PREFIX as APPRUNNER_PREFIX
from apprunner import AppRunner
from calls import CallLog
from ecs_runner import HANDLED as ECS_HANDLED
from ecs_runner import TARGET_PREFIX as ECS_PREFIX
from ecs_runner import EcsRunner
from locks import MOTO_LOCK
from settings import Settings
from strict import Strict

Response = tuple[int, list[tuple[str, str]], bytes]


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if environ.get("wsgi.input_terminated"):
        return stream.read()
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return stream.read(length) if length > 0 else b""


def _json(code: int, payload: Any) -> Response:
    return code, [("Content-Type", "application/json")], json.dumps(payload, indent=1, sort_keys=True).encode()


def _internal_error(environ: dict[str, Any], message: str) -> Response:
    """A 500 in the request's protocol: XML for the Query protocol (RDS, EC2,
    IAM, CloudFormation) and S3, JSON otherwise."""
    if s3_cond.is_s3(environ):
        return s3_cond.error(environ, 500, "InternalError", message)
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        text = escape(message)
        xml = (
            "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code>"
            f"<Message>{text}</Message></Error><RequestId>emulator</RequestId></ErrorResponse>"
        )
        return 500, [("Content-Type", "text/xml")], xml.encode()
    return _json(500, {"__type": "InternalFailure", "message": message})


class Dispatcher:
    def __init__(self, moto_app: Callable, settings: Settings, ecs: EcsRunner, apprunner: AppRunner) -> None:
        self.moto_app = moto_app
        self.settings = settings
        self.ecs = ecs
        self.apprunner = apprunner
        self.calls = CallLog()
        self.s3 = s3_cond.S3Front(settings)
        self.strict = Strict(settings, ecs, apprunner)
        self.iam = iam.Iam()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        started = time.time()
        try:
            code, headers, body = self._route(environ)
        except s3_cond.DropConnection:
            # No answer at all: server.py's request handler resets the connection.
            environ["emulator.reset"] = True
            self.calls.record(environ, environ.get("emulator.request_body", b""), started, 0)
            raise ConnectionResetError("emulator: s3_fault = reset") from None
        except Exception as e:  # noqa: BLE001 - answer 500 and keep serving
            traceback.print_exc(file=sys.stderr)
            code, headers, body = _internal_error(
                environ, f"emulator or moto error ({type(e).__name__}: {e}); see stderr"
            )
        head_length = [v for k, v in headers if k.lower() == "content-length"]
        headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")]
        if environ.get("REQUEST_METHOD") == "HEAD" and not body and head_length:
            # A HEAD answer's Content-Length is the object's size (HeadObject), not its empty body's.
            headers.append(("Content-Length", head_length[0]))
        else:
            headers.append(("Content-Length", str(len(body))))
        if "emulator.request_body" in environ:
            self.calls.record(environ, environ["emulator.request_body"], started, code)
        start_response(_status_line(code), headers)
        return [body]

    def _route(self, environ: dict[str, Any]) -> Response:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_emulator"):
            return self._control(environ, path)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        body = _read_body(environ)
        environ["emulator.request_body"] = body
        denied = self.iam.authorize(environ, body)
        if denied is not None:
            return denied
        # -- strict mode: service model + rule catalogue (strict.py); off with --lax --
        rejected = self.strict.check(environ, body)
        if rejected is not None:
            return rejected
        # -- end strict mode --
        if target.startswith(APPRUNNER_PREFIX):
            return self.apprunner.handle(target, environ, body)
        if target.startswith(ECS_PREFIX) and target[len(ECS_PREFIX) :] in ECS_HANDLED:
            return self.ecs.handle(target[len(ECS_PREFIX) :], environ, body, lambda b: self.call_moto(environ, b))
        if not target and s3_cond.is_s3(environ):
            return self.iam.hide_missing(environ, self.s3.handle(environ, body, self.call_moto))
        return self.call_moto(environ, body)

    def call_moto(self, environ: dict[str, Any], body: bytes) -> Response:
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        env["CONTENT_LENGTH"] = str(len(body))
        env.pop("wsgi.input_terminated", None)
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = list(headers)
            return lambda data: None

        with MOTO_LOCK:
            result = self.moto_app(env, start_response)
            try:
                out = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return captured["status"], captured["headers"], out

    # -- /_emulator -----------------------------------------------------------------------

    def _control(self, environ: dict[str, Any], path: str) -> Response:
        method = environ.get("REQUEST_METHOD", "GET")
        route = path[len("/_emulator") :].strip("/")
        if method == "GET":
            views: dict[str, Callable[[], Any]] = {
                "health": lambda: {"ok": True},
                "clusters": rds_pg.clusters_view,
                "snapshots": rds_pg.snapshots_view,
                "endpoints": rds_pg.endpoint_databases,
                "tasks": self.ecs.view,
                "apprunner": self.apprunner.view,
                "config": self.settings.snapshot,
                "iam": self.iam.view,
                "iam/denied": lambda: {"denied": self.iam.denied()},
            }
            if route in views:
                return _json(200, views[route]())
            if route.startswith("apprunner/health/"):
                code, answer = self.apprunner.health(route[len("apprunner/health/") :])
                return _json(code, answer)
            if route == "calls":
                return _json(200, self.calls.view(environ.get("QUERY_STRING", "")))
        elif method == "POST" and route == "iam":
            try:
                return _json(200, self.iam.register(json.loads(_read_body(environ) or b"{}")))
            except ValueError as e:
                return _json(400, {"error": str(e)})
        elif method == "POST" and route == "backup":
            try:
                cluster = json.loads(_read_body(environ) or b"{}").get("cluster", "")
                return _json(200, rds_pg.take_backup(cluster))
            except ValueError as e:
                return _json(400, {"error": str(e)})
        elif method == "POST" and route == "config":
            try:
                changes = json.loads(_read_body(environ) or b"{}")
                return _json(200, self.settings.update(changes))
            except ValueError as e:
                return _json(400, {"error": str(e)})
        return _json(404, {"error": f"no such emulator endpoint: {method} {path}"})
