"""ECS tasks that really run: RunTask, DescribeTasks, ListTasks, StopTask.

RunTask is first handed to moto (validation, the task's ARN, its awsvpc ENI
attachment); the emulator then owns the task's life:

    PROVISIONING -> PENDING (task_start_seconds in all) -> RUNNING -> STOPPED

Each container with a command runs as a local process in its own process
group (cwd = --task-cwd), its stdout and stderr (one pipe, so their order
is kept) going line by line into moto's CloudWatch Logs under the
container's awslogs group and ``<prefix>/<container>/<task id>`` stream.
When an essential container exits, the others get SIGTERM (SIGKILL after
stop_timeout_seconds), the logs are drained, and the task is STOPPED with
each container's exit code. A command that cannot start, or an image whose
reference contains ``does-not-exist`` (CannotPullContainerError, as Fargate
reports a missing image), stops the task with stopCode TaskFailedToStart and
no exit code. Each container runs the command of the task definition revision
RunTask named (or the override).

DescribeTasks, ListTasks and StopTask are answered here from that state.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ecs.models import ecs_backends

import procs
import rules
from cwlogs import StreamWriter
from locks import MOTO_LOCK
from pg import PgServer
from settings import Settings
from wire import ServiceError, epoch, json_object, region_of

JSON_11 = "application/x-amz-json-1.1"
TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
HANDLED = ("RunTask", "DescribeTasks", "ListTasks", "StopTask")
# An image whose reference contains this cannot be pulled (CannotPullContainerError).
UNPULLABLE = "does-not-exist"


class EcsError(ServiceError):
    pass


# -- task model ----------------------------------------------------------------------


@dataclass
class ContainerRun:
    name: str
    image: str | None
    essential: bool
    argv: list[str]
    environment: dict[str, str]
    awslogs: dict[str, str] | None
    cpu: int | None
    memory: int | None
    memory_reservation: int | None
    arn: str
    last_status: str = "PENDING"
    exit_code: int | None = None
    reason: str | None = None
    proc: subprocess.Popen | None = None
    pump: threading.Thread | None = None
    log_stream: str | None = None


@dataclass
class TaskRun:
    arn: str
    task_id: str
    cluster_name: str
    cluster_arn: str
    region: str
    task_definition_arn: str
    family: str
    launch_type: str
    started_by: str | None
    group: str | None
    tags: list[dict[str, str]]
    overrides: dict[str, Any]
    attachments: list[dict[str, Any]]
    container_instance_arn: str | None
    capacity_provider_name: str | None
    cpu: str | None
    memory: str | None
    containers: list[ContainerRun]
    platform_version: str | None
    created_at: float = field(default_factory=epoch)
    last_status: str = "PROVISIONING"
    desired_status: str = "RUNNING"
    version: int = 1
    pull_started_at: float | None = None
    pull_stopped_at: float | None = None
    connectivity_at: float | None = None
    started_at: float | None = None
    stopping_at: float | None = None
    execution_stopped_at: float | None = None
    stopped_at: float | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    changed: threading.Event = field(default_factory=threading.Event)
    stop_request: str | None = None  # StopTask's reason, once asked

    def set_status(self, status: str) -> None:
        with self.lock:
            if self.last_status != status:
                self.last_status = status
                self.version += 1

    def private_ip(self) -> str | None:
        for a in self.attachments:
            for d in a.get("details", []):
                if d.get("name") == "privateIPv4Address":
                    return d.get("value")
        return None

    def to_json(self, include_tags: bool = True) -> dict[str, Any]:
        with self.lock:
            attachment_id = self.attachments[0]["id"] if self.attachments else None
            containers = []
            for c in self.containers:
                cj: dict[str, Any] = {
                    "containerArn": c.arn,
                    "taskArn": self.arn,
                    "name": c.name,
                    "lastStatus": c.last_status,
                    "networkBindings": [],
                    "networkInterfaces": (
                        [{"attachmentId": attachment_id, "privateIpv4Address": self.private_ip()}]
                        if attachment_id
                        else []
                    ),
                    "healthStatus": "UNKNOWN",
                    "cpu": str(c.cpu or 0),
                }
                if c.image:
                    cj["image"] = c.image
                if c.memory is not None:
                    cj["memory"] = str(c.memory)
                if c.memory_reservation is not None:
                    cj["memoryReservation"] = str(c.memory_reservation)
                if c.exit_code is not None:
                    cj["exitCode"] = c.exit_code
                if c.reason:
                    cj["reason"] = c.reason
                if c.proc is not None:
                    cj["runtimeId"] = f"{self.task_id}-{c.proc.pid}"
                containers.append(cj)
            out: dict[str, Any] = {
                "attachments": self.attachments,
                "availabilityZone": f"{self.region}a",
                "clusterArn": self.cluster_arn,
                "containers": containers,
                "createdAt": self.created_at,
                "desiredStatus": self.desired_status,
                "enableExecuteCommand": False,
                "group": self.group,
                "healthStatus": "UNKNOWN",
                "lastStatus": self.last_status,
                "launchType": self.launch_type,
                "overrides": self.overrides,
                "startedBy": self.started_by,
                "taskArn": self.arn,
                "taskDefinitionArn": self.task_definition_arn,
                "version": self.version,
            }
            if self.launch_type == "FARGATE":
                out["platformVersion"] = self.platform_version or "1.4.0"
                out["platformFamily"] = "Linux"
                out["ephemeralStorage"] = {"sizeInGiB": 20}
            optional = {
                "cpu": self.cpu,
                "memory": self.memory,
                "containerInstanceArn": self.container_instance_arn,
                "capacityProviderName": self.capacity_provider_name,
                "pullStartedAt": self.pull_started_at,
                "pullStoppedAt": self.pull_stopped_at,
                "startedAt": self.started_at,
                "stoppingAt": self.stopping_at,
                "executionStoppedAt": self.execution_stopped_at,
                "stoppedAt": self.stopped_at,
                "stopCode": self.stop_code,
                "stoppedReason": self.stopped_reason,
            }
            out.update({k: v for k, v in optional.items() if v is not None})
            if self.connectivity_at is not None:
                out["connectivity"] = "CONNECTED" if self.last_status != "STOPPED" else "DISCONNECTED"
                out["connectivityAt"] = self.connectivity_at
            if include_tags:
                out["tags"] = self.tags
            return {k: v for k, v in out.items() if v is not None}


# -- the runner ------------------------------------------------------------------------


def _cluster_name(cluster: str | None) -> str:
    return (cluster or "default").split("/")[-1]


class EcsRunner:
    def __init__(self, settings: Settings, pg: PgServer, task_cwd: str) -> None:
        self.settings = settings
        self.pg = pg
        self.task_cwd = task_cwd
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskRun] = {}  # arn -> task, in RunTask order
        self._tokens: dict[tuple[str, str], list[str]] = {}  # (cluster, clientToken) -> arns
        self._token_requests: dict[tuple[str, str], str] = {}  # (cluster, clientToken) -> rules.fingerprint
        self._shutting_down = threading.Event()

    # -- HTTP entry ---------------------------------------------------------------

    def handle(
        self, action: str, environ: dict[str, Any], body: bytes, call_moto: Callable[[bytes], tuple[int, list, bytes]]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            params = json_object(body, EcsError, "SerializationException")
            region = region_of(environ)
            if action == "RunTask":
                result = self.run_task(params, region, body, call_moto)
                if isinstance(result, tuple):  # moto's own error response, passed through
                    return result
            elif action == "DescribeTasks":
                result = self.describe_tasks(params, region)
            elif action == "ListTasks":
                result = self.list_tasks(params, region)
            elif action == "StopTask":
                result = self.stop_task(params, region)
            else:  # pragma: no cover - the dispatcher only sends HANDLED
                raise EcsError("InvalidParameterException", f"unsupported action {action}")
            return 200, [("Content-Type", JSON_11)], json.dumps(result).encode()
        except EcsError as e:
            payload = {"__type": e.code, "message": e.message}
            return 400, [("Content-Type", JSON_11)], json.dumps(payload).encode()

    def _require_cluster(self, cluster: str | None, region: str) -> str:
        name = _cluster_name(cluster)
        with MOTO_LOCK:
            if name not in ecs_backends[DEFAULT_ACCOUNT_ID][region].clusters:
                raise EcsError("ClusterNotFoundException", "Cluster not found.")
        return name

    # -- RunTask --------------------------------------------------------------------

    def run_task(
        self, params: dict[str, Any], region: str, body: bytes, call_moto: Callable[[bytes], tuple[int, list, bytes]]
    ) -> dict[str, Any] | tuple[int, list, bytes]:
        cluster = _cluster_name(params.get("cluster"))
        token = params.get("clientToken")
        if token:
            with self._lock:
                arns = self._tokens.get((cluster, token))
                if arns:
                    return {"tasks": [self._json(self._tasks[a]) for a in arns], "failures": []}
        if self.settings.take_count("capacity_failures"):
            # Nothing starts; ECS answers 200 with the reason in failures[] (no ARN).
            return {"tasks": [], "failures": [{"reason": self.settings.get("capacity_reason")}]}
        fingerprint = rules.fingerprint(params)
        awsvpc = (params.get("networkConfiguration") or {}).get("awsvpcConfiguration")
        if isinstance(awsvpc, dict) and "securityGroups" not in awsvpc:
            # Optional in AWS (the VPC's default group); moto needs the key.
            awsvpc["securityGroups"] = []
            body = json.dumps(params).encode()
        status, headers, moto_body = call_moto(body)
        if status != 200:
            return status, headers, moto_body
        created = json.loads(moto_body).get("tasks", [])
        runs = []
        with MOTO_LOCK:
            backend = ecs_backends[DEFAULT_ACCOUNT_ID][region]
            for t in created:
                arn = t["taskArn"]
                moto_task = backend.tasks[cluster][arn]
                task_definition = backend.describe_task_definition(moto_task.task_definition_arn)
                runs.append(self._new_run(moto_task, task_definition, params, region))
        with self._lock:
            for run in runs:
                self._tasks[run.arn] = run
            if token:
                self._tokens[(cluster, token)] = [r.arn for r in runs]
                self._token_requests[(cluster, token)] = fingerprint
        for run in runs:
            threading.Thread(target=self._lifecycle, args=(run,), name=f"task-{run.task_id}", daemon=True).start()
        return {"tasks": [self._json(r) for r in runs], "failures": []}

    def token_conflict(self, params: dict[str, Any]) -> list[str]:
        """The tasks a RunTask clientToken already started on that cluster when this
        request differs from the first one in anything but the token; else []."""
        key = (_cluster_name(params.get("cluster")), params.get("clientToken") or "")
        with self._lock:
            arns = self._tokens.get(key)
            if not arns or self._token_requests.get(key) == rules.fingerprint(params):
                return []
            return list(arns)

    def _new_run(self, moto_task: Any, task_definition: Any, params: dict[str, Any], region: str) -> TaskRun:
        overrides = params.get("overrides") or {}
        by_name = {o.get("name"): o for o in overrides.get("containerOverrides", []) if o.get("name")}
        task_id = moto_task.task_arn.rsplit("/", 1)[-1]
        containers = []
        for cdef in task_definition.container_definitions:
            name = cdef.get("name")
            override = by_name.get(name, {})
            command = override.get("command") if override.get("command") is not None else cdef.get("command")
            env = {e["name"]: e.get("value", "") for e in cdef.get("environment") or [] if "name" in e}
            env.update({e["name"]: e.get("value", "") for e in override.get("environment") or [] if "name" in e})
            log = cdef.get("logConfiguration") or {}
            awslogs = log.get("options") if log.get("logDriver") == "awslogs" else None
            containers.append(
                ContainerRun(
                    name=name,
                    image=cdef.get("image"),
                    essential=cdef.get("essential", True) is not False,
                    argv=list(cdef.get("entryPoint") or []) + list(command or []),
                    environment=env,
                    awslogs=dict(awslogs) if awslogs else None,
                    cpu=cdef.get("cpu"),
                    memory=cdef.get("memory"),
                    memory_reservation=cdef.get("memoryReservation"),
                    arn=f"arn:aws:ecs:{region}:{DEFAULT_ACCOUNT_ID}:container/{moto_task.cluster_name}/{task_id}/{uuid.uuid4()}",
                )
            )
        echoed = {"containerOverrides": overrides.get("containerOverrides", []), "inferenceAcceleratorOverrides": []}
        for k, v in overrides.items():
            echoed.setdefault(k, v)
        return TaskRun(
            arn=moto_task.task_arn,
            task_id=task_id,
            cluster_name=moto_task.cluster_name,
            cluster_arn=moto_task.cluster_arn,
            region=region,
            task_definition_arn=moto_task.task_definition_arn,
            family=task_definition.family,
            launch_type=moto_task.launch_type or params.get("launchType") or "FARGATE",
            started_by=params.get("startedBy"),
            group=moto_task.group,
            tags=list(params.get("tags") or []),
            overrides=echoed,
            attachments=[dict(a) for a in moto_task.attachments],
            container_instance_arn=moto_task.container_instance_arn,
            capacity_provider_name=moto_task.capacity_provider_name,
            cpu=overrides.get("cpu") or task_definition.cpu,
            memory=overrides.get("memory") or task_definition.memory,
            containers=containers,
            platform_version=params.get("platformVersion"),
        )

    # -- the life of a task -------------------------------------------------------------

    def _lifecycle(self, task: TaskRun) -> None:
        try:
            self._live(task)
        except Exception as e:  # noqa: BLE001 - never leave a task hanging in RUNNING
            self._kill_all(task)
            self._finish(task, code=task.stop_code or "TaskFailedToStart", reason=f"emulator error: {e}")

    def _wait(self, task: TaskRun, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when a StopTask or shutdown cut it short."""
        deadline = time.monotonic() + seconds
        while True:
            if task.stop_request is not None or self._shutting_down.is_set():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            task.changed.wait(min(left, 0.2))
            task.changed.clear()

    def _live(self, task: TaskRun) -> None:
        start = self.settings.seconds("task_start_seconds")
        if self._wait(task, start / 2):
            return self._finish_before_start(task)
        with task.lock:
            task.set_status("PENDING")
            task.pull_started_at = epoch()
            task.connectivity_at = epoch()
        if self._wait(task, start / 2):
            return self._finish_before_start(task)
        unpullable = self._pull_images(task)
        if unpullable:
            return self._finish(task, code="TaskFailedToStart", reason=unpullable)
        with task.lock:
            task.pull_stopped_at = epoch()
        failure = self._start_containers(task)
        if failure:
            self._kill_all(task)
            self._join_pumps(task)
            return self._finish(task, code="TaskFailedToStart", reason=failure)
        with task.lock:
            task.started_at = epoch()
            task.set_status("RUNNING")
            for c in task.containers:
                if c.proc is not None:
                    c.last_status = "RUNNING"
        # Run until an essential container exits or StopTask / shutdown.
        while True:
            essential_done = any(
                c.essential and c.proc is not None and c.exit_code is not None for c in task.containers
            )
            if essential_done or task.stop_request is not None or self._shutting_down.is_set():
                break
            task.changed.wait(0.2)
            task.changed.clear()
        with task.lock:
            task.desired_status = "STOPPED"
            task.stopping_at = epoch()
            task.set_status("DEACTIVATING" if task.stop_request is None else "STOPPING")
        self._kill_all(task)
        self._join_pumps(task)
        with task.lock:
            task.execution_stopped_at = epoch()
        if task.stop_request is not None:
            self._finish(task, code="UserInitiated", reason=task.stop_request)
        elif self._shutting_down.is_set():
            self._finish(task, code="TerminationNotice", reason="Emulator shutting down")
        else:
            self._finish(task, code="EssentialContainerExited", reason="Essential container in task exited")

    def _finish_before_start(self, task: TaskRun) -> None:
        reason = task.stop_request if task.stop_request is not None else "Emulator shutting down"
        code = "UserInitiated" if task.stop_request is not None else "TerminationNotice"
        self._finish(task, code=code, reason=reason)

    def _finish(self, task: TaskRun, code: str, reason: str) -> None:
        with task.lock:
            now = epoch()
            task.desired_status = "STOPPED"
            task.stop_code = task.stop_code or code
            task.stopped_reason = task.stopped_reason or reason
            task.stopping_at = task.stopping_at or now
            task.execution_stopped_at = task.execution_stopped_at or now
            task.stopped_at = now
            for c in task.containers:
                c.last_status = "STOPPED"
            task.set_status("STOPPED")

    @staticmethod
    def _pull_images(task: TaskRun) -> str | None:
        """No image is pulled, but one whose reference contains ``does-not-exist``
        fails as a missing image does on Fargate; returns the task's stop reason."""
        for c in task.containers:
            if c.image and UNPULLABLE in c.image:
                with task.lock:
                    c.reason = (
                        "CannotPullContainerError: pull image manifest has been retried 7 time(s): "
                        f"failed to resolve ref {c.image}: {c.image}: not found"
                    )
                    c.last_status = "STOPPED"
                return c.reason
        return None

    def _start_containers(self, task: TaskRun) -> str | None:
        """Start every container that has a command; returns the task's stop
        reason when an essential one cannot start."""
        for c in task.containers:
            if not c.argv:
                if c.essential:
                    c.reason = (
                        f"CannotStartContainerError: container {c.name} has no command or entryPoint "
                        "(the emulator cannot run an image's default command)"
                    )
                    return c.reason
                continue
            try:
                c.proc = procs.spawn(c.argv, procs.container_env(c.environment, task.region, self.pg), self.task_cwd)
            except FileNotFoundError:
                c.reason = (
                    "CannotStartContainerError: ResourceInitializationError: failed to create new container "
                    f'runtime task: exec: "{c.argv[0]}": executable file not found in $PATH'
                )
            except PermissionError:
                c.reason = f'CannotStartContainerError: exec: "{c.argv[0]}": permission denied'
            except OSError as e:
                c.reason = f"CannotStartContainerError: {e}"
            if c.proc is None:
                if c.essential:
                    return c.reason
                continue
            writer = None
            if c.awslogs and c.awslogs.get("awslogs-group"):
                prefix = c.awslogs.get("awslogs-stream-prefix")
                c.log_stream = f"{prefix}/{c.name}/{task.task_id}" if prefix else task.task_id
                writer = StreamWriter(
                    c.awslogs["awslogs-group"], c.log_stream, c.awslogs.get("awslogs-region", task.region)
                )
            c.pump = procs.pump(c.proc, writer)
            threading.Thread(target=self._await_exit, args=(task, c), name=f"wait-{c.name}", daemon=True).start()
        return None

    @staticmethod
    def _await_exit(task: TaskRun, c: ContainerRun) -> None:
        """Record the exit code as soon as the process ends (a child it left
        behind may hold the pipe open; the task's end kills the group)."""
        assert c.proc is not None
        code = c.proc.wait()
        with task.lock:
            c.exit_code = procs.exit_code(code)
            c.last_status = "STOPPED"
        task.changed.set()

    def _kill_all(self, task: TaskRun) -> None:
        procs.stop_group(
            [c.proc for c in task.containers if c.proc is not None], self.settings.seconds("stop_timeout_seconds")
        )

    def _join_pumps(self, task: TaskRun) -> None:
        for c in task.containers:
            if c.pump is not None:
                c.pump.join(timeout=10)

    # -- DescribeTasks / ListTasks / StopTask ---------------------------------------------

    def _desired(self, task: TaskRun) -> str:
        """desiredStatus as answered: with sparse_desired_running a task that
        stopped by itself keeps RUNNING (only StopTask changes it)."""
        if self.settings.get("sparse_desired_running") and task.stop_request is None:
            return "RUNNING"
        return task.desired_status

    def _json(self, task: TaskRun, include_tags: bool = True) -> dict[str, Any]:
        """A task as answered, with the sparse switches applied."""
        out = task.to_json(include_tags=include_tags)
        out["desiredStatus"] = self._desired(task)
        if self.settings.get("sparse_no_started_at"):
            for key in ("startedAt", "pullStartedAt", "pullStoppedAt", "connectivityAt"):
                out.pop(key, None)
        return out

    def _find(self, cluster: str, ref: str) -> TaskRun | None:
        with self._lock:
            for task in self._tasks.values():
                if task.cluster_name == cluster and ref in (task.arn, task.task_id):
                    return task
        return None

    def describe_tasks(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        cluster = self._require_cluster(params.get("cluster"), region)
        refs = params.get("tasks")
        if not refs:
            raise EcsError("InvalidParameterException", "Tasks cannot be empty.")
        if len(refs) > 100:
            raise EcsError("InvalidParameterException", "Tasks cannot have more than 100 elements")
        include_tags = "TAGS" in (params.get("include") or [])
        tasks, failures = [], []
        for ref in refs:
            task = self._find(cluster, ref)
            if task is None:
                failures.append({"arn": ref, "reason": "MISSING"})
            else:
                tasks.append(self._json(task, include_tags=include_tags))
        return {"tasks": tasks, "failures": failures}

    def list_tasks(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        cluster = self._require_cluster(params.get("cluster"), region)
        family = params.get("family")
        started_by = params.get("startedBy")
        desired = params.get("desiredStatus") or "RUNNING"
        launch_type = params.get("launchType")
        if params.get("serviceName"):
            return {"taskArns": []}  # the emulator runs no service tasks
        with self._lock:
            tasks = list(self._tasks.values())
        arns = []
        for t in tasks:
            with t.lock:
                if t.cluster_name != cluster or self._desired(t) != desired:
                    continue
                if family and t.family != family:
                    continue
                if started_by and t.started_by != started_by:
                    continue
                if launch_type and t.launch_type != launch_type:
                    continue
                arns.append(t.arn)
        limit = int(params.get("maxResults") or 100)
        start = int(params.get("nextToken") or 0)
        page = arns[start : start + limit]
        out: dict[str, Any] = {"taskArns": page}
        if start + limit < len(arns):
            out["nextToken"] = str(start + limit)
        return out

    def stop_task(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        cluster = self._require_cluster(params.get("cluster"), region)
        ref = params.get("task")
        if not ref:
            raise EcsError("InvalidParameterException", "task cannot be empty.")
        task = self._find(cluster, ref)
        if task is None:
            raise EcsError("InvalidParameterException", "The referenced task was not found.")
        with task.lock:
            if task.last_status != "STOPPED" and task.stop_request is None:
                task.stop_request = params.get("reason") or "Task stopped by user"
                task.desired_status = "STOPPED"
                task.version += 1
        task.changed.set()
        return {"task": self._json(task)}

    # -- debug and shutdown ------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        with self._lock:
            tasks = list(self._tasks.values())
        out = {}
        for t in tasks:
            with t.lock:
                out[t.arn] = {
                    "taskDefinitionArn": t.task_definition_arn,
                    "lastStatus": t.last_status,
                    "desiredStatus": t.desired_status,
                    "stopCode": t.stop_code,
                    "startedAt": t.started_at,
                    "stoppedAt": t.stopped_at,
                    "containers": {
                        c.name: {
                            "image": c.image,
                            "argv": c.argv,
                            "pid": c.proc.pid if c.proc else None,
                            "exitCode": c.exit_code,
                            "reason": c.reason,
                            "logStream": c.log_stream,
                        }
                        for c in t.containers
                    },
                }
        return out

    def shutdown(self) -> None:
        self._shutting_down.set()
        with self._lock:
            tasks = list(self._tasks.values())
        for t in tasks:
            t.changed.set()
        for t in tasks:
            for c in t.containers:
                if c.proc is not None and c.proc.poll() is None:
                    procs.signal_group(c.proc, signal.SIGTERM)
        deadline = time.monotonic() + 3
        for t in tasks:
            for c in t.containers:
                if c.proc is not None:
                    try:
                        c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        pass
                    procs.signal_group(c.proc, signal.SIGKILL)
