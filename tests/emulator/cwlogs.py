"""Writing log events straight into moto's CloudWatch Logs backend.

moto's GetLogEvents sorts a stream's events by timestamp and its forward
tokens are indexes into that order, so a stream must only ever grow at the
end: ``StreamWriter`` stamps each event with the wall clock in milliseconds,
never earlier than the previous event, and appends under one lock.

With the setting ``log_ingest_delay_seconds`` above 0 an event is stamped when
written but put into the backend only that long afterwards (one background
thread, in due order), as CloudWatch Logs ingests asynchronously: a reader
may see a task's last lines only after the task is STOPPED.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.logs.models import logs_backends

from locks import MOTO_LOCK


_settings: Any = None  # settings.Settings, set by install()


def install(settings: Any) -> None:
    global _settings
    _settings = settings


def _delay() -> float:
    return float(_settings.get("log_ingest_delay_seconds")) if _settings is not None else 0.0


class _Ingester:
    """Puts delayed events into the backend when they fall due."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, StreamWriter, int, str]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def submit(self, due: float, writer: StreamWriter, ts: int, message: str) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), writer, ts, message))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="log-ingest", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cond.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                _, _, writer, ts, message = heapq.heappop(self._heap)
            writer._put(ts, message)


_INGESTER = _Ingester()


def _backend(region: str, account: str = DEFAULT_ACCOUNT_ID) -> Any:
    return logs_backends[account][region]


def ensure_stream(group: str, stream: str, region: str) -> None:
    with MOTO_LOCK:
        backend = _backend(region)
        if group not in backend.groups:
            backend.create_log_group(group, tags={})
        backend.ensure_log_stream(group, stream)


class StreamWriter:
    def __init__(self, group: str, stream: str, region: str) -> None:
        self.group = group
        self.stream = stream
        self.region = region
        self._lock = threading.Lock()
        self._last_ms = 0
        self.events_written = 0
        ensure_stream(group, stream, region)

    def write(self, message: str) -> None:
        """Append one event; empty messages are dropped, as the awslogs driver does."""
        if not message:
            return
        with self._lock:
            ts = max(int(time.time() * 1000), self._last_ms)
            self._last_ms = ts
            delay = _delay()
            if delay > 0:
                _INGESTER.submit(time.monotonic() + delay, self, ts, message)
            else:
                self._put(ts, message)
            self.events_written += 1

    def _put(self, ts: int, message: str) -> None:
        with MOTO_LOCK:
            backend = _backend(self.region)
            if self.group not in backend.groups:  # deleted meanwhile: recreate, as a writer would fail
                backend.create_log_group(self.group, tags={})
            backend.ensure_log_stream(self.group, self.stream)
            backend.put_log_events(self.group, self.stream, [{"timestamp": ts, "message": message}])
