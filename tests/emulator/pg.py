"""The real PostgreSQL server behind the emulated Aurora clusters.

Every database this module creates is named ``emu_<16 hex>``, carries a
comment naming this host and process, and is remembered so that ``drop_all``
removes it at shutdown. ``reap_stale`` removes databases left behind by
emulators on this host that died without cleaning up.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

_COMMENT_RE = re.compile(r"^ferry-emulator host=(?P<host>\S+) pid=(?P<pid>\d+)$")


class PgError(Exception):
    pass


class PgServer:
    def __init__(self, admin_url: str) -> None:
        parts = urlsplit(admin_url)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError(f"--pg-url must be a postgres:// URL, got {admin_url!r}")
        self.admin_url = admin_url
        self._parts = parts
        self._lock = threading.Lock()
        self._created: set[str] = set()
        self._comment = f"ferry-emulator host={socket.gethostname()} pid={os.getpid()}"

    # -- URLs -------------------------------------------------------------

    def url_for(self, dbname: str) -> str:
        """The admin URL pointed at ``dbname``."""
        p = self._parts
        return urlunsplit((p.scheme, p.netloc, "/" + dbname, p.query, ""))

    @property
    def user(self) -> str | None:
        return self._parts.username

    @property
    def password(self) -> str | None:
        return self._parts.password

    @property
    def hostport(self) -> str:
        """``host:port`` exactly as the admin URL spells it."""
        return self._parts.netloc.rsplit("@", 1)[-1]

    @property
    def host(self) -> str:
        return self._parts.hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return self._parts.port or 5432

    # -- admin operations ---------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10)

    def check(self) -> str:
        with self._connect() as conn:
            row = conn.execute("SELECT version()").fetchone()
            return row[0] if row else "?"

    @staticmethod
    def new_name() -> str:
        return "emu_" + secrets.token_hex(8)

    def create(self, template: str | None = None) -> str:
        """Create a new database, empty or as a copy of ``template``; returns its name."""
        name = self.new_name()
        with self._connect() as conn:
            if template is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            else:
                self._create_from_template(conn, name, template)
            conn.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(self._comment))
            )
        with self._lock:
            self._created.add(name)
        return name

    def _create_from_template(self, conn: psycopg.Connection, name: str, template: str, attempts: int = 6) -> None:
        """CREATE DATABASE ... TEMPLATE needs the template to have no other sessions:
        end them, then copy; a client reconnecting in between makes us try again."""
        last: Exception | None = None
        for attempt in range(attempts):
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (template,),
            )
            try:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
                )
                return
            except psycopg.errors.ObjectInUse as e:
                last = e
                time.sleep(0.1 * (attempt + 1))
            except psycopg.errors.InvalidCatalogName as e:
                raise PgError(f"template database {template} does not exist") from e
        raise PgError(f"could not copy {template}: {last}")

    def drop(self, name: str | None) -> None:
        if not name:
            return
        with self._connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        with self._lock:
            self._created.discard(name)

    def drop_all(self) -> list[str]:
        """Drop every database this process created; returns the names dropped."""
        with self._lock:
            names = sorted(self._created)
        dropped = []
        for name in names:
            try:
                self.drop(name)
                dropped.append(name)
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
        return dropped

    def reap_stale(self) -> list[str]:
        """Drop emu_ databases whose creator (an emulator on this host) is gone."""
        me = socket.gethostname()
        stale = []
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT d.datname, shobj_description(d.oid, 'pg_database') FROM pg_database d "
                "WHERE d.datname LIKE 'emu\\_%'"
            ).fetchall()
        for name, comment in rows:
            m = _COMMENT_RE.match(comment or "")
            if not m or m.group("host") != me:
                continue
            pid = int(m.group("pid"))
            if pid == os.getpid() or _alive(pid):
                continue
            stale.append(name)
        for name in stale:
            try:
                self.drop(name)
            except Exception:  # noqa: BLE001 - another reaper may have won
                pass
        return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
