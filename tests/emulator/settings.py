"""Run-time settings of the emulator: timings (seconds) and one-shot faults.

Timings start as DEFAULT_SECONDS x --delay-scale and can be changed while the
emulator runs with ``POST /_emulator/config``. A value is read at the moment
a transition starts, so a change applies to the next operation, not to one
already under way.
"""

from __future__ import annotations

import os
import threading
from typing import Any

# What each timing governs:
#   cluster_seconds     CreateDBCluster: cluster "creating" -> "available"
#   snapshot_seconds    CreateDBClusterSnapshot: "creating" (PercentProgress grows) -> "available"
#   restore_seconds     RestoreDBClusterFromSnapshot: cluster "creating" -> "available"
#   clone_seconds       RestoreDBClusterToPointInTime (a clone): cluster "creating" -> "available"
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
    "clone_seconds": 4.0,
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

# Counted faults: each matching operation uses one up until none is left.
#   s3_conflicts     that many of the next S3 conditional writes (If-Match / If-None-Match)
#                    answer 409 ConditionalRequestConflict and write nothing
#   capacity_failures that many of the next RunTask calls start nothing: HTTP 200 with
#                    tasks [] and failures [{"reason": capacity_reason}] (ECS API Reference,
#                    RunTask: "failures: Any failures associated with the call"), as ECS answers
#                    when Fargate has no capacity
COUNTERS = ("s3_conflicts", "capacity_failures")

# Modes (one of the listed strings), in force until changed.
#   s3_fault         "none"; "503": every S3 request answers 503 ServiceUnavailable;
#                    "reset": every S3 request is dropped without an answer (connection reset)
CHOICES: dict[str, tuple[str, ...]] = {
    "s3_fault": ("none", "503", "reset"),
}

# Free text, in force until changed.
#   capacity_reason  the failures[].reason of a capacity_failures RunTask; Fargate's words by
#                    default, or e.g. "RESOURCE:ENI", "RESOURCE:MEMORY", "RESOURCE:CPU"
CAPACITY_REASON = "Capacity is unavailable at this time. Please try again later or in a different availability zone"
TEXTS: dict[str, str] = {"capacity_reason": CAPACITY_REASON}

# Plain values.
#   snapshot_quota   Max of the ManualClusterSnapshots account quota (DescribeAccountAttributes)
#   stop_timeout_seconds  StopTask: SIGTERM, then SIGKILL after this long
#   log_ingest_delay_seconds  a task's log line becomes visible to GetLogEvents / FilterLogEvents
#                    only this long after the task wrote it (CloudWatch Logs ingests
#                    asynchronously: lines may show after the task is STOPPED)
OTHER_DEFAULTS: dict[str, float] = {
    "snapshot_quota": 100,
    "stop_timeout_seconds": 5.0,
    "log_ingest_delay_seconds": 0.0,
}


# Sparse answers, as a plain moto and App Runner's eventual consistency give
# them (all off by default; FERRY_EMULATOR_SPARSE=1 in the server's
# environment turns them all on at start-up, late_operation_seconds at
# SPARSE_LATE_OPERATION_SECONDS):
#   sparse_no_started_at          DescribeTasks (and RunTask, StopTask) leave out startedAt,
#                                 pullStartedAt, pullStoppedAt, connectivityAt
#   sparse_desired_running        a stopped task keeps desiredStatus RUNNING, and ListTasks
#                                 lists it under RUNNING
#   sparse_no_account_attributes  DescribeAccountAttributes answers InvalidAction (not implemented)
#   late_operation_seconds        (a number) a new App Runner operation shows in ListOperations
#                                 only this long after it started; 0 = at once
SPARSE_SWITCHES = ("sparse_no_started_at", "sparse_desired_running", "sparse_no_account_attributes")

# Lax mode: no model validation and no rule catalogue (strict.py). Off by default;
# server.py --lax or FERRY_EMULATOR_LAX=1 turns it on at start-up.
SWITCHES = ("lax",)
SPARSE_LATE_OPERATION_SECONDS = 4.0


def sparse_from_environment(environ: dict[str, str] | None = None) -> bool:
    """FERRY_EMULATOR_SPARSE=1 (or true/on/yes) turns every sparse switch on."""
    value = (environ if environ is not None else os.environ).get("FERRY_EMULATOR_SPARSE", "")
    return value.strip().lower() in ("1", "true", "on", "yes")


class Settings:
    def __init__(self, delay_scale: float = 1.0, sparse: bool | None = None, lax: bool = False) -> None:
        self._lock = threading.Lock()
        self.delay_scale = delay_scale
        self._values: dict[str, Any] = {k: v * delay_scale for k, v in DEFAULT_SECONDS.items()}
        self._values.update(OTHER_DEFAULTS)
        for flag in ONE_SHOT_FLAGS:
            self._values[flag] = False
        for counter in COUNTERS:
            self._values[counter] = 0
        for name, modes in CHOICES.items():
            self._values[name] = modes[0]
        on = sparse_from_environment() if sparse is None else sparse
        for switch in SPARSE_SWITCHES:
            self._values[switch] = on
        self._values["late_operation_seconds"] = SPARSE_LATE_OPERATION_SECONDS if on else 0.0
        self._values.update(TEXTS)
        self._values["lax"] = lax

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

    def take_count(self, name: str) -> bool:
        """Use one of a counted fault: True (and one less left) while any is left."""
        with self._lock:
            left = int(self._values[name])
            if left <= 0:
                return False
            self._values[name] = left - 1
            return True

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
            if key in ONE_SHOT_FLAGS or key in SPARSE_SWITCHES or key in SWITCHES:
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
                parsed[key] = value
            elif key in COUNTERS:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{key} must be a whole number >= 0")
                parsed[key] = value
            elif key in TEXTS:
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(f"{key} must be a non-empty string")
                parsed[key] = value
            elif key in CHOICES:
                if value not in CHOICES[key]:
                    raise ValueError(f"{key} must be one of {', '.join(repr(m) for m in CHOICES[key])}")
                parsed[key] = value
            elif key in DEFAULT_SECONDS or key in OTHER_DEFAULTS or key == "late_operation_seconds":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"{key} must be a number >= 0")
                parsed[key] = value
            else:
                known = sorted([*DEFAULT_SECONDS, *OTHER_DEFAULTS, *ONE_SHOT_FLAGS, *COUNTERS, *CHOICES, *SPARSE_SWITCHES, *SWITCHES, *TEXTS, "late_operation_seconds"])
                raise ValueError(f"unknown setting {key!r}; known: {', '.join(known)}")
        with self._lock:
            self._values.update(parsed)
        return self.snapshot()
