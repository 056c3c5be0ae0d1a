"""Local processes standing in for containers: their own process group, one
pipe for stdout and stderr (so their order is kept), lines to CloudWatch Logs."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import rds_pg
from cwlogs import StreamWriter
from pg import PgServer

# Query parameters that name the real server's TLS setup; they mean nothing
# for the local PostgreSQL that stands in for the cluster.
_TLS_PARAMS = {"sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl"}


def rewrite_env_value(value: str, hosts: dict[str, str], pg: PgServer) -> str:
    """Point a value that mentions a cluster endpoint at the cluster's real database.

    A URL whose host is the endpoint keeps its scheme (``postgresql+psycopg``
    too), fragment and non-TLS query; user, password, host, port and
    database become the local server's. Any other value that contains the
    endpoint becomes the cluster's plain PostgreSQL URL."""
    lowered = value.lower()
    for host, db in hosts.items():
        if host not in lowered:
            continue
        try:
            parts = urlsplit(value)
            url_host = (parts.hostname or "").lower()
        except ValueError:
            parts, url_host = None, ""
        if parts is not None and parts.scheme and url_host == host:
            userinfo = ""
            if pg.user:
                userinfo = quote(pg.user, safe="")
                if pg.password:
                    userinfo += ":" + quote(pg.password, safe="")
                userinfo += "@"
            query = urlencode(
                [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _TLS_PARAMS]
            )
            return urlunsplit((parts.scheme, userinfo + pg.hostport, "/" + db, query, parts.fragment))
        return pg.url_for(db)
    return value


def container_env(environment: dict[str, str], region: str, pg: PgServer) -> dict[str, str]:
    """The emulator's own environment (PATH and so on), AWS_REGION, then the
    container's variables with cluster endpoints rewritten."""
    hosts = rds_pg.endpoint_databases()
    env = dict(os.environ)
    env.update({"AWS_REGION": region, "AWS_DEFAULT_REGION": region})
    env.update({k: rewrite_env_value(v, hosts, pg) for k, v in environment.items()})
    return env


def spawn(argv: list[str], env: dict[str, str], cwd: str) -> subprocess.Popen:
    """Start ``argv`` in its own process group; raises OSError when it cannot start."""
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def pump(proc: subprocess.Popen, writer: StreamWriter | None) -> threading.Thread:
    """Copy the process's output to ``writer`` line by line until EOF, in a thread."""

    def run() -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            if writer is not None:
                writer.write(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        proc.stdout.close()

    thread = threading.Thread(target=run, name=f"log-{proc.pid}", daemon=True)
    thread.start()
    return thread


def exit_code(returncode: int) -> int:
    """A process killed by signal N reports 128+N, as Docker does."""
    return 128 - returncode if returncode < 0 else returncode


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(procs: list[subprocess.Popen], timeout: float) -> None:
    """SIGTERM each process group, SIGKILL what is left after ``timeout``.
    A group whose leader already exited is killed at once: the container is over."""
    for p in procs:
        signal_group(p, signal.SIGTERM if p.poll() is None else signal.SIGKILL)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:
        signal_group(p, signal.SIGKILL)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
