"""A loopback TCP port in front of the PostgreSQL server for one database.

A clone made by RestoreDBClusterToPointInTime is reached the way a client
reaches an Aurora cluster: host and port. Its Endpoint is 127.0.0.1 and its
Port is the port of a ``Proxy``, which passes every connection through to
``--pg-url``'s server after rewriting the startup message: ``database``
becomes the clone's database and ``user`` becomes ``--pg-url``'s user (the
emulator creates no master user). Everything after the startup message
(authentication, queries, COPY, notices) passes through unchanged.

An SSLRequest or GSSENCRequest is answered ``N`` (no encryption here), as a
server without TLS does; clients with ``sslmode=prefer`` (the default of
libpq and psycopg) go on in plain text, ``sslmode=require`` fails as it would
against such a server. A CancelRequest is passed through as is (its key is
the server's).
"""

from __future__ import annotations

import socket
import struct
import threading

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3 = 196608
MAX_STARTUP = 10_000


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client closed the connection during start-up")
        data += chunk
    return data


def _read_packet(sock: socket.socket) -> tuple[int, bytes]:
    """A start-up packet: (code, body after the code)."""
    (length,) = struct.unpack("!i", _read_exact(sock, 4))
    if length < 8 or length > MAX_STARTUP:
        raise ConnectionError(f"bad start-up packet length {length}")
    body = _read_exact(sock, length - 4)
    (code,) = struct.unpack("!i", body[:4])
    return code, body[4:]


def rewrite_startup(params: bytes, database: str, user: str | None) -> bytes:
    """The key/value pairs of a protocol-3 startup message with ``database``
    (and ``user``, when given) replaced; a full packet, length included."""
    parts = params.split(b"\0")
    pairs: list[tuple[bytes, bytes]] = []
    for i in range(0, len(parts) - 1, 2):
        if parts[i] == b"":
            break
        pairs.append((parts[i], parts[i + 1]))
    wanted = {b"database": database.encode()}
    if user:
        wanted[b"user"] = user.encode()
    out = [(k, wanted.pop(k, v)) for k, v in pairs]
    out.extend(wanted.items())
    body = struct.pack("!i", PROTOCOL_3) + b"".join(k + b"\0" + v + b"\0" for k, v in out) + b"\0"
    return struct.pack("!i", len(body) + 4) + body


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (dst, src):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Proxy:
    """Listens on 127.0.0.1:<port> for one database until ``close``."""

    def __init__(self, server_host: str, server_port: int, database: str, user: str | None) -> None:
        self.server = (server_host, server_port)
        self.database = database
        self.user = user
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name=f"pgproxy-{self.port}", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        try:
            self._listener.close()
        except OSError:
            pass

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            code, body = _read_packet(client)
            while code in (SSL_REQUEST, GSSENC_REQUEST):
                client.sendall(b"N")
                code, body = _read_packet(client)
            upstream = socket.create_connection(self.server, timeout=10)
            upstream.settimeout(None)
            if code == CANCEL_REQUEST:
                upstream.sendall(struct.pack("!ii", len(body) + 8, code) + body)
            elif code == PROTOCOL_3:
                upstream.sendall(rewrite_startup(body, self.database, self.user))
            else:
                raise ConnectionError(f"unsupported start-up code {code}")
        except (OSError, ConnectionError, struct.error):
            client.close()
            if upstream is not None:
                upstream.close()
            return
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)
