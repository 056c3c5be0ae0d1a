"""A fault-injecting HTTP proxy for ferry's tests (standalone, stdlib only).

It listens on a loopback port in front of one upstream endpoint (the
emulator's) and forwards every request as it came. Rules, set through its
control endpoint, pick requests by method, path (a regular expression over the
path and query) and headers, and change what the client gets back:

* ``"500"``: forward, let the upstream apply the request, then answer
  ``500 InternalError`` instead of the real answer (a lost answer);
* ``"drop"``: forward, then close the connection without answering;
* ``"truncate"``: forward, then send the real status and headers with the
  body cut short (``keep`` bytes, or up to and including the first
  ``after`` text); ``fix_length`` true sets ``Content-Length`` to what is
  sent (a short but well-formed answer), false keeps the original length and
  closes the connection (a body that ends early);
* ``"delay"``: wait ``seconds`` and then forward and answer normally;
* ``"shift_date"``: forward and answer normally, with the ``Date`` header
  moved by ``seconds`` (the server's clock as if that much time had passed).

``"forward": false`` on a rule answers (500 / drop) without forwarding.
A rule applies ``count`` times (default 1, ``-1`` for always), after
``skip`` matching requests have passed untouched.

Control endpoint (on the same port; ``/_fault`` is no S3 bucket name):

* ``POST /_fault/rules``: JSON list of rules, appended;
* ``DELETE /_fault/rules``: remove every rule;
* ``GET /_fault/rules``: the rules with how often each applied;
* ``GET /_fault/log``: every proxied request (method, path, selected
  headers, status sent, rule applied).

A rule: ``{"method": "PUT", "path": "/bucket/ferry/locks/", "headers":
{"If-None-Match": "\\*"}, "action": "500", "count": 1}``. ``path`` and each
header value are regular expressions (``re.search``); a header named in
``headers`` must be present.

Usage::

    python fault_proxy.py --upstream http://127.0.0.1:PORT [--port 0]
    # stdout: READY http://127.0.0.1:<port>

It exits when its stdin reaches end of file (``--exit-on-stdin-eof``), so a
test that dies does not leave it behind.
"""

from __future__ import annotations

import argparse
import datetime
import email.utils
import http.client
import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}


class Rules:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rules: list[dict[str, Any]] = []
        self.log: list[dict[str, Any]] = []

    def add(self, rules: list[dict[str, Any]]) -> None:
        for r in rules:
            if r.get("action") not in ("500", "drop", "truncate", "delay", "shift_date"):
                raise ValueError(f"unknown action {r.get('action')!r}: 500, drop, truncate, delay or shift_date")
            re.compile(r.get("path", ""))
            for v in (r.get("headers") or {}).values():
                re.compile(v)
        with self.lock:
            for r in rules:
                self.rules.append({"count": 1, "skip": 0, "forward": True, **r, "applied": 0, "seen": 0})

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def pick(self, method: str, path: str, headers: dict[str, str]) -> dict[str, Any] | None:
        """The rule that applies to this request, counted as applied."""
        with self.lock:
            for r in self.rules:
                if r.get("method") and r["method"].upper() != method.upper():
                    continue
                if not re.search(r.get("path", ""), path):
                    continue
                wanted = r.get("headers") or {}
                if any(k.lower() not in headers or not re.search(v, headers[k.lower()]) for k, v in wanted.items()):
                    continue
                r["seen"] += 1
                if r["seen"] <= r["skip"]:
                    continue
                if r["count"] != -1 and r["applied"] >= r["count"]:
                    continue
                r["applied"] += 1
                return dict(r)
        return None

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.log.append(entry)


def read_chunked(rfile: Any) -> bytes:
    """A chunked body, as raw bytes (chunk sizes, extensions and trailers kept)."""
    out = bytearray()
    while True:
        line = rfile.readline()
        out += line
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers, then the empty line
                t = rfile.readline()
                out += t
                if t in (b"\r\n", b"\n", b""):
                    return bytes(out)
        out += rfile.read(size)
        out += rfile.readline()  # CRLF after the chunk


def make_handler(upstream: str, rules: Rules) -> type[BaseHTTPRequestHandler]:
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet
            pass

        def _control(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                if self.command == "POST" and self.path == "/_fault/rules":
                    rules.add(json.loads(body or b"[]"))
                    self._json(200, {"ok": True})
                elif self.command == "DELETE" and self.path == "/_fault/rules":
                    rules.clear()
                    self._json(200, {"ok": True})
                elif self.command == "GET" and self.path == "/_fault/rules":
                    with rules.lock:
                        self._json(200, rules.rules)
                elif self.command == "GET" and self.path == "/_fault/log":
                    with rules.lock:
                        self._json(200, rules.log)
                else:
                    self._json(404, {"error": f"no control {self.command} {self.path}"})
            except (ValueError, re.error) as e:
                self._json(400, {"error": str(e)})

        def _json(self, status: int, value: Any) -> None:
            data = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _proxy(self) -> None:
            if self.path.startswith("/_fault/"):
                self._control()
                return
            if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                body = read_chunked(self.rfile)
            else:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
            lowered = {k.lower(): v for k, v in self.headers.items()}
            rule = rules.pick(self.command, self.path, lowered)
            action = rule["action"] if rule else None
            entry: dict[str, Any] = {
                "method": self.command,
                "path": self.path,
                "headers": {k: lowered[k] for k in ("if-none-match", "if-match") if k in lowered},
                "action": action,
            }
            if action == "delay":
                time.sleep(float(rule.get("seconds", 1)))
            answer = None
            if rule is None or rule.get("forward", True):
                answer = self._forward(body)
            if action == "drop":
                entry["status"] = None
                rules.record(entry)
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if action == "500" or answer is None:
                entry["status"] = 500 if action == "500" else 502
                rules.record(entry)
                if action == "500":
                    self._error(500, "InternalError", "We encountered an internal error. Please try again.")
                else:
                    self._error(502, "BadGateway", "the upstream did not answer")
                return
            assert answer is not None
            status, reason, headers, data = answer
            full_length = len(data)
            close = False
            if action == "truncate":
                if "after" in rule:
                    at = data.find(rule["after"].encode())
                    keep = at + len(rule["after"].encode()) if at >= 0 else len(data)
                else:
                    keep = int(rule.get("keep", len(data) // 2))
                    keep = keep if keep >= 0 else max(0, len(data) + keep)
                data = data[:keep]
                close = not rule.get("fix_length", True)
                entry["truncated_to"] = len(data)
            entry["status"] = status
            rules.record(entry)
            # Only the upstream's Date and Server (send_response would add the proxy's own).
            self.log_request(status)
            self.send_response_only(status, reason)
            for k, v in headers:
                if k.lower() in HOP_BY_HOP or k.lower() in ("content-length", "transfer-encoding", "date"):
                    continue
                self.send_header(k, v)
            # The upstream's Date, when it sent one, is what the client must see.
            date = next((v for k, v in headers if k.lower() == "date"), None)
            if action == "shift_date":
                when = email.utils.parsedate_to_datetime(date) if date else datetime.datetime.now(datetime.timezone.utc)
                date = email.utils.format_datetime(when + datetime.timedelta(seconds=float(rule.get("seconds", 0))), usegmt=True)
                entry["date"] = date
            if date:
                self.send_header("Date", date)
            if self.command == "HEAD":
                full_length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
            self.send_header("Content-Length", str(full_length if close or self.command == "HEAD" else len(data)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

        def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes] | None:
            conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=120)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in self.headers.items():
                    if k.lower() in HOP_BY_HOP:
                        continue
                    conn.putheader(k, v)
                conn.endheaders(body if body else None)
                r = conn.getresponse()
                data = r.read()
                return r.status, r.reason, r.getheaders(), data
            except OSError:
                return None
            finally:
                conn.close()

        def _error(self, status: int, code: str, message: str) -> None:
            data = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _proxy

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of the emulator")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--exit-on-stdin-eof", action="store_true")
    args = ap.parse_args()
    rules = Rules()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.upstream, rules))
    server.daemon_threads = True
    print(f"READY http://127.0.0.1:{server.server_address[1]}", flush=True)
    if args.exit_on_stdin_eof:

        def watch() -> None:
            sys.stdin.read()
            server.shutdown()

        threading.Thread(target=watch, daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
