"""Run-time settings of the emulator: timings (seconds) and one-shot faults.

Timings start as DEFAULT_SECONDS x --delay-scale and can be changed while the
emulator runs with ``POST /_emulator/config``. A value is read at the moment
a transition starts, so a change applies to the next operation, not to one
already under way.
"""

from __future__ import annotations

import threading
from typing import Any

# What each timing governs:
#   cluster_seconds     CreateDBCluster: cluster "creating" -> "available"
#   snapshot_seconds    CreateDBClusterSnapshot: "creating" (PercentProgress grows) -> "available"
#   restore_seconds     RestoreDBClusterFromSnapshot: cluster "creating" -> "available"
#   rename_seconds      ModifyDBCluster NewDBClusterIdentifier: "renaming" -> "available"
#   modify_seconds      ModifyDBCluster of other settings: "modifying" -> "available"
#   instance_seconds    CreateDBInstance: instance "creating" -> "available"
#   task_start_seconds  RunTask: PROVISIONING/PENDING before the command starts
#   service_seconds     App Runner: OPERATION_IN_PROGRESS -> RUNNING / PAUSED
#   app_ready_seconds   App Runner: how much longer a started app may take to listen on PORT
DEFAULT_SECONDS: dict[str, float] = {
    "cluster_seconds": 1.0,
    "snapshot_seconds": 3.0,
    "restore_seconds": 4.0,
    "rename_seconds": 2.0,
    "modify_seconds": 1.0,
    "instance_seconds": 2.0,
    "task_start_seconds": 1.0,
    "service_seconds": 2.0,
    "app_ready_seconds": 30.0,
}

# One-shot faults: each applies to the next matching operation, then resets.
#   fail_snapshot    the next CreateDBClusterSnapshot ends "failed"
#   fail_deployment  the next App Runner deployment (StartDeployment, UpdateService) fails (ROLLBACK_SUCCEEDED)
ONE_SHOT_FLAGS = ("fail_snapshot", "fail_deployment")

# Plain values.
#   snapshot_quota   Max of the ManualClusterSnapshots account quota (DescribeAccountAttributes)
#   stop_timeout_seconds  StopTask: SIGTERM, then SIGKILL after this long
OTHER_DEFAULTS: dict[str, float] = {
    "snapshot_quota": 100,
    "stop_timeout_seconds": 5.0,
}


class Settings:
    def __init__(self, delay_scale: float = 1.0) -> None:
        self._lock = threading.Lock()
        self.delay_scale = delay_scale
        self._values: dict[str, Any] = {k: v * delay_scale for k, v in DEFAULT_SECONDS.items()}
        self._values.update(OTHER_DEFAULTS)
        for flag in ONE_SHOT_FLAGS:
            self._values[flag] = False

    def seconds(self, name: str) -> float:
        with self._lock:
            return float(self._values[name])

    def get(self, name: str) -> Any:
        with self._lock:
            return self._values[name]

    def take_flag(self, name: str) -> bool:
        """Read a one-shot flag and reset it."""
        with self._lock:
            value = bool(self._values[name])
            self._values[name] = False
            return value

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out = dict(self._values)
        out["delay_scale"] = self.delay_scale
        return out

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply ``changes``; raises ValueError naming the first bad key or value."""
        if not isinstance(changes, dict):
            raise ValueError("expected a JSON object")
        parsed: dict[str, Any] = {}
        for key, value in changes.items():
            if key in ONE_SHOT_FLAGS:
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
                parsed[key] = value
            elif key in DEFAULT_SECONDS or key in OTHER_DEFAULTS:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"{key} must be a number >= 0")
                parsed[key] = value
            else:
                known = sorted([*DEFAULT_SECONDS, *OTHER_DEFAULTS, *ONE_SHOT_FLAGS])
                raise ValueError(f"unknown setting {key!r}; known: {', '.join(known)}")
        with self._lock:
            self._values.update(parsed)
        return self.snapshot()
