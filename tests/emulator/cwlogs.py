"""Writing log events straight into moto's CloudWatch Logs backend.

moto's GetLogEvents sorts a stream's events by timestamp and its forward
tokens are indexes into that order, so a stream must only ever grow at the
end: ``StreamWriter`` stamps each event with the wall clock in milliseconds,
never earlier than the previous event, and appends under one lock.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.logs.models import logs_backends

from locks import MOTO_LOCK


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
            with MOTO_LOCK:
                backend = _backend(self.region)
                if self.group not in backend.groups:  # deleted meanwhile: recreate, as a writer would fail
                    backend.create_log_group(self.group, tags={})
                backend.ensure_log_stream(self.group, self.stream)
                backend.put_log_events(self.group, self.stream, [{"timestamp": ts, "message": message}])
            self.events_written += 1
