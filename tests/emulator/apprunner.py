"""App Runner (awsJson1.0, X-Amz-Target AppRunner.*), which moto lacks.

A service is a record with a status and a list of operations. Each
mutating call starts an operation, puts the service in OPERATION_IN_PROGRESS
for service_seconds, then ends the operation SUCCEEDED (service RUNNING, or
PAUSED after PauseService) or FAILED (the previous configuration back, the
service RUNNING, or CREATE_FAILED after CreateService). A mutating call
while an operation runs, pausing a paused service or resuming a running one
is InvalidStateException. Service events go to the CloudWatch log group
``/aws/apprunner/<name>/<id>/service``, stream ``events``.

The image does not run, but its ``ImageConfiguration.StartCommand`` does:
CreateService, StartDeployment, UpdateService and ResumeService (re)start
``sh -c <StartCommand>`` as a local process with RuntimeEnvironmentVariables
(cluster endpoints rewritten to the real databases, as for ECS tasks), its
output going to ``/aws/apprunner/<name>/<id>/application``, stream
``instance/<hex>``, with PORT set to a free local port. When the operation's
service_seconds are up, an app that exited non-zero fails it (an app that
migrates on start-up and breaks); one that listens on PORT passes App
Runner's TCP health check; one still starting is given app_ready_seconds more
to do either. Exit 0 also passes. A failed deployment
(StartDeployment, UpdateService) ends ROLLBACK_SUCCEEDED with the previous
configuration back, as App Runner rolls back; a failed CreateService ends
FAILED. PauseService, DeleteService and shutdown stop the app. The one-shot
fail_deployment makes the next StartDeployment or UpdateService fail regardless.

Images: the image tag's content is the file ``<task cwd>/images/<ImageIdentifier
with / and : replaced by _>``, if there is one. A deployment (CreateService,
StartDeployment, UpdateService) reads it again and gives it to the app as
APP_IMAGE; a failed deployment keeps the previously deployed content, and
ResumeService restarts the app with that, as App Runner does with images.

Every status a service goes through is kept with its time (``history`` in
``GET /_emulator/apprunner``), so tests can assert the sequence a restore
caused. ``GET /_emulator/apprunner/health/<service name>`` stands for the
app's health URL: 503 while the service is paused or resuming, or when the
database its DATABASE_URL points at does not answer; 200 with the database
(cluster id) and its Alembic revision otherwise.

Shapes follow botocore's apprunner 2020-05-15 model; timestamps are epoch
seconds.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psycopg
from moto.core import DEFAULT_ACCOUNT_ID

import procs
import rds_pg
from cwlogs import StreamWriter
from pg import PgServer
from settings import Settings
from wire import ServiceError, epoch, json_object, region_of

JSON_10 = "application/x-amz-json-1.0"
TARGET_PREFIX = "AppRunner."

MUTATING_TYPES = {
    "PauseService": "PAUSE_SERVICE",
    "ResumeService": "RESUME_SERVICE",
    "StartDeployment": "START_DEPLOYMENT",
    "UpdateService": "UPDATE_SERVICE",
    "DeleteService": "DELETE_SERVICE",
}
# Keys whose value is a whole map that UpdateService replaces rather than merges.
_REPLACED_MAPS = {"RuntimeEnvironmentVariables", "RuntimeEnvironmentSecrets"}


class AppRunnerError(ServiceError):
    pass


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in _REPLACED_MAPS:
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Operation:
    id: str
    type: str
    target_arn: str
    status: str = "IN_PROGRESS"
    started_at: float = field(default_factory=epoch)
    ended_at: float | None = None
    updated_at: float = field(default_factory=epoch)
    ready_by: float = 0.0  # time.monotonic() by which a started app must listen on its port
    image: str | None = None  # the image content this operation runs

    def to_json(self) -> dict[str, Any]:
        out = {
            "Id": self.id,
            "Type": self.type,
            "Status": self.status,
            "TargetArn": self.target_arn,
            "StartedAt": self.started_at,
            "UpdatedAt": self.updated_at,
        }
        if self.ended_at is not None:
            out["EndedAt"] = self.ended_at
        return out


@dataclass
class AppService:
    name: str
    id: str
    arn: str
    region: str
    source: dict[str, Any]
    instance: dict[str, Any]
    health_check: dict[str, Any]
    network: dict[str, Any]
    observability: dict[str, Any]
    encryption: dict[str, Any] | None
    auto_scaling_arn: str
    created_at: float = field(default_factory=epoch)
    updated_at: float = field(default_factory=epoch)
    status: str = "OPERATION_IN_PROGRESS"
    operations: list[Operation] = field(default_factory=list)  # oldest first
    log: StreamWriter | None = None
    app: subprocess.Popen | None = None  # the running StartCommand, if any
    app_port: int = 0  # the PORT it was given
    deployed_image: str | None = None  # image content of the last successful deployment
    history: list[tuple[float, str]] = field(default_factory=list)  # (time, status), oldest first

    def set_status(self, status: str) -> None:
        if not self.history or self.history[-1][1] != status:
            self.history.append((epoch(), status))
        self.status = status

    @property
    def start_command(self) -> str | None:
        image = self.source.get("ImageRepository") or {}
        return (image.get("ImageConfiguration") or {}).get("StartCommand") or None

    @property
    def environment(self) -> dict[str, str]:
        image = self.source.get("ImageRepository") or {}
        return dict((image.get("ImageConfiguration") or {}).get("RuntimeEnvironmentVariables") or {})

    @property
    def url(self) -> str:
        return f"{self.id[:10]}.{self.region}.awsapprunner.com"

    def to_json(self) -> dict[str, Any]:
        out = {
            "ServiceName": self.name,
            "ServiceId": self.id,
            "ServiceArn": self.arn,
            "ServiceUrl": self.url,
            "CreatedAt": self.created_at,
            "UpdatedAt": self.updated_at,
            "Status": self.status,
            "SourceConfiguration": self.source,
            "InstanceConfiguration": self.instance,
            "HealthCheckConfiguration": self.health_check,
            "AutoScalingConfigurationSummary": {
                "AutoScalingConfigurationArn": self.auto_scaling_arn,
                "AutoScalingConfigurationName": "DefaultConfiguration",
                "AutoScalingConfigurationRevision": 1,
                "Status": "ACTIVE",
                "CreatedAt": self.created_at,
                "HasAssociatedService": True,
                "IsDefault": True,
            },
            "NetworkConfiguration": self.network,
            "ObservabilityConfiguration": self.observability,
        }
        if self.encryption:
            out["EncryptionConfiguration"] = self.encryption
        return out

    def summary(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in self.to_json().items()
            if k in ("ServiceName", "ServiceId", "ServiceArn", "ServiceUrl", "CreatedAt", "UpdatedAt", "Status")
        }

    def event(self, message: str) -> None:
        if self.log is not None:
            self.log.write(f"{time.strftime('%m-%d-%Y %I:%M:%S %p', time.gmtime())} [AppRunner] {message}")


# Operations after which the service's instances (re)start.
_STARTS_APP = {"CREATE_SERVICE", "START_DEPLOYMENT", "UPDATE_SERVICE", "RESUME_SERVICE"}
# Operations that pull the image tag again (a resume restarts what was deployed).
_PULLS_IMAGE = {"CREATE_SERVICE", "START_DEPLOYMENT", "UPDATE_SERVICE"}


class AppRunner:
    def __init__(self, settings: Settings, pg: PgServer, cwd: str) -> None:
        self.settings = settings
        self.pg = pg
        self.cwd = cwd
        self._lock = threading.RLock()
        self._services: dict[str, AppService] = {}  # arn -> service
        self._timers: list[threading.Timer] = []

    # -- HTTP entry ----------------------------------------------------------------------

    def handle(self, target: str, environ: dict[str, Any], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        action = target[len(TARGET_PREFIX) :]
        headers = [("Content-Type", JSON_10)]
        try:
            params = json_object(body, AppRunnerError, "InvalidRequestException")
            method = getattr(self, "op_" + action, None)
            if method is None:
                raise AppRunnerError("UnknownOperationException", f"emulator: App Runner {action} is not emulated")
            with self._lock:
                result = method(params, region_of(environ))
            return 200, headers, json.dumps(result).encode()
        except AppRunnerError as e:
            payload = {"__type": e.code, "Message": e.message, "message": e.message}
            return 400, headers + [("x-amzn-ErrorType", e.code)], json.dumps(payload).encode()

    # -- helpers -----------------------------------------------------------------------------

    def source_kinds(self, arn: str) -> set[str] | None:
        """The SourceConfiguration members (CodeRepository / ImageRepository) the
        service was created with; None for an unknown service."""
        service = self._services.get(arn)
        if service is None:
            return None
        return {k for k in ("CodeRepository", "ImageRepository") if service.source.get(k)}

    def _service(self, params: dict[str, Any]) -> AppService:
        arn = params.get("ServiceArn")
        if not arn:
            raise AppRunnerError("InvalidRequestException", "ServiceArn is required")
        service = self._services.get(arn)
        if service is None:
            raise AppRunnerError("ResourceNotFoundException", f"Service with the provided ARN doesn't exist: {arn}")
        return service

    def _start_operation(self, service: AppService, op_type: str, on_success: str, rollback: Any = None) -> Operation:
        op = Operation(id=str(uuid.uuid4()), type=op_type, target_arn=service.arn)
        service.operations.append(op)
        service.set_status("OPERATION_IN_PROGRESS")
        service.updated_at = epoch()
        fail = op_type in ("START_DEPLOYMENT", "UPDATE_SERVICE") and self.settings.take_flag("fail_deployment")
        service.event(f"{op_type} operation {op.id} started.")
        self._stop_app(service)
        # A deployment pulls the image again; resuming restarts the one deployed.
        op.image = self._pull_image(service) if op_type in _PULLS_IMAGE else service.deployed_image
        # A paused service has no instances: updating it changes only its configuration.
        if op_type in _STARTS_APP and on_success != "PAUSED":
            self._start_app(service, op.image)
        op.ready_by = time.monotonic() + self.settings.seconds("service_seconds") + self.settings.seconds(
            "app_ready_seconds"
        )
        self._end_later(self.settings.seconds("service_seconds"), service, op, on_success, fail, rollback)
        return op

    def _end_later(self, delay: float, *args: Any) -> None:
        timer = threading.Timer(delay, self._end_operation, args=args)
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _pull_image(self, service: AppService) -> str | None:
        """The content of the service's image tag now: the file
        ``<task cwd>/images/<ImageIdentifier with / and : as _>``, if any."""
        image = (service.source.get("ImageRepository") or {}).get("ImageIdentifier") or ""
        path = os.path.join(self.cwd, "images", image.replace("/", "_").replace(":", "_"))
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return None

    def _start_app(self, service: AppService, image: str | None) -> None:
        command = service.start_command
        if not command:
            return
        stream = f"instance/{uuid.uuid4().hex}"
        writer = StreamWriter(f"/aws/apprunner/{service.name}/{service.id}/application", stream, service.region)
        env = procs.container_env(service.environment, service.region, self.pg)
        # App Runner tells the app its port; its TCP health check is "something listens there".
        service.app_port = _free_port()
        env["PORT"] = str(service.app_port)
        if image is not None:
            env["APP_IMAGE"] = image
        try:
            service.app = procs.spawn(["sh", "-c", command], env, self.cwd)
        except OSError as e:
            service.event(f"Could not start the start command: {e}")
            return
        procs.pump(service.app, writer)
        service.event(f"Instance started the start command (log stream {stream}).")

    def _stop_app(self, service: AppService) -> None:
        if service.app is not None:
            procs.stop_group([service.app], self.settings.seconds("stop_timeout_seconds"))
            service.app = None

    def _end_operation(self, service: AppService, op: Operation, on_success: str, fail: bool, rollback: Any) -> None:
        with self._lock:
            now = epoch()
            if op.type in _STARTS_APP and service.app is not None and not fail:
                code = service.app.poll()
                if code is not None and code != 0:
                    fail = True
                    service.event(f"The start command exited with code {procs.exit_code(code)}; health check failed.")
                elif code is None and not _listening(service.app_port):
                    if time.monotonic() < op.ready_by:
                        # Still starting (an app that migrates first): check again shortly.
                        self._end_later(0.2, service, op, on_success, fail, rollback)
                        return
                    fail = True
                    service.event(f"Health check failed: nothing listens on port {service.app_port}.")
            rolls_back = op.type in ("START_DEPLOYMENT", "UPDATE_SERVICE")
            op.status = ("ROLLBACK_SUCCEEDED" if rolls_back else "FAILED") if fail else "SUCCEEDED"
            op.ended_at = op.updated_at = now
            service.updated_at = now
            if fail:
                if rollback is not None:
                    service.source = rollback
                back = {"CREATE_SERVICE": "CREATE_FAILED", "UPDATE_SERVICE": on_success}.get(op.type, "RUNNING")
                service.set_status(back)
                service.event(f"{op.type} operation {op.id} failed; rolled back to the previous configuration.")
            elif on_success == "DELETED":
                service.set_status("DELETED")
                service.event(f"{op.type} operation {op.id} succeeded; service deleted.")
                self._services.pop(service.arn, None)
            else:
                if op.type in _PULLS_IMAGE:
                    service.deployed_image = op.image
                service.set_status(on_success)
                service.event(f"{op.type} operation {op.id} succeeded; service {on_success}.")

    @staticmethod
    def _check_idle(service: AppService, action: str) -> None:
        if service.status == "OPERATION_IN_PROGRESS":
            raise AppRunnerError(
                "InvalidStateException",
                f"You can't perform {action} on service {service.name} while an operation is in progress "
                "(status OPERATION_IN_PROGRESS).",
            )

    # -- operations ----------------------------------------------------------------------------

    def op_CreateService(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        name = params.get("ServiceName")
        source = params.get("SourceConfiguration")
        if not name or not isinstance(source, dict):
            raise AppRunnerError("InvalidRequestException", "ServiceName and SourceConfiguration are required")
        if any(s.name == name and s.region == region for s in self._services.values()):
            raise AppRunnerError("InvalidRequestException", f"Service with name {name} already exists")
        source = copy.deepcopy(source)
        image = source.get("ImageRepository")
        if isinstance(image, dict):
            image.setdefault("ImageIdentifier", "public.ecr.aws/emulator/app:latest")
            image.setdefault("ImageRepositoryType", "ECR_PUBLIC")
            image.setdefault("ImageConfiguration", {})
        source.setdefault("AutoDeploymentsEnabled", False)
        service_id = uuid.uuid4().hex
        account = DEFAULT_ACCOUNT_ID
        service = AppService(
            name=name,
            id=service_id,
            arn=f"arn:aws:apprunner:{region}:{account}:service/{name}/{service_id}",
            region=region,
            source=source,
            instance={"Cpu": "1024", "Memory": "2048", **(params.get("InstanceConfiguration") or {})},
            health_check={
                "Protocol": "TCP",
                "Path": "/",
                "Interval": 10,
                "Timeout": 5,
                "HealthyThreshold": 1,
                "UnhealthyThreshold": 5,
                **(params.get("HealthCheckConfiguration") or {}),
            },
            network=_merge(
                {
                    "EgressConfiguration": {"EgressType": "DEFAULT"},
                    "IngressConfiguration": {"IsPubliclyAccessible": True},
                    "IpAddressType": "IPV4",
                },
                params.get("NetworkConfiguration") or {},
            ),
            observability=params.get("ObservabilityConfiguration") or {"ObservabilityEnabled": False},
            encryption=params.get("EncryptionConfiguration"),
            auto_scaling_arn=params.get("AutoScalingConfigurationArn")
            or f"arn:aws:apprunner:{region}:{account}:autoscalingconfiguration/DefaultConfiguration/1/"
            + "0" * 31
            + "1",
        )
        service.log = StreamWriter(f"/aws/apprunner/{name}/{service_id}/service", "events", region)
        self._services[service.arn] = service
        op = self._start_operation(service, "CREATE_SERVICE", "RUNNING")
        return {"Service": service.to_json(), "OperationId": op.id}

    def op_DescribeService(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        return {"Service": self._service(params).to_json()}

    def op_ListServices(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        services = [s.summary() for s in self._services.values() if s.region == region]
        return _page(params, services, "ServiceSummaryList", default_max=20)

    def op_PauseService(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        service = self._service(params)
        self._check_idle(service, "PauseService")
        if service.status == "PAUSED":
            raise AppRunnerError("InvalidStateException", f"Service {service.name} is already paused.")
        op = self._start_operation(service, "PAUSE_SERVICE", "PAUSED")
        return {"Service": service.to_json(), "OperationId": op.id}

    def op_ResumeService(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        service = self._service(params)
        self._check_idle(service, "ResumeService")
        if service.status != "PAUSED":
            raise AppRunnerError(
                "InvalidStateException", f"Service {service.name} is not paused (status {service.status})."
            )
        op = self._start_operation(service, "RESUME_SERVICE", "RUNNING")
        return {"Service": service.to_json(), "OperationId": op.id}

    def op_StartDeployment(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        service = self._service(params)
        self._check_idle(service, "StartDeployment")
        if service.status != "RUNNING":
            raise AppRunnerError(
                "InvalidStateException", f"Service {service.name} must be RUNNING to deploy (status {service.status})."
            )
        op = self._start_operation(service, "START_DEPLOYMENT", "RUNNING")
        return {"OperationId": op.id}

    def op_UpdateService(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        service = self._service(params)
        self._check_idle(service, "UpdateService")
        previous_source = copy.deepcopy(service.source)
        back_to = "PAUSED" if service.status == "PAUSED" else "RUNNING"
        if isinstance(params.get("SourceConfiguration"), dict):
            service.source = _merge(service.source, params["SourceConfiguration"])
        if isinstance(params.get("InstanceConfiguration"), dict):
            service.instance = _merge(service.instance, params["InstanceConfiguration"])
        if isinstance(params.get("HealthCheckConfiguration"), dict):
            service.health_check = _merge(service.health_check, params["HealthCheckConfiguration"])
        if isinstance(params.get("NetworkConfiguration"), dict):
            service.network = _merge(service.network, params["NetworkConfiguration"])
        if isinstance(params.get("ObservabilityConfiguration"), dict):
            service.observability = params["ObservabilityConfiguration"]
        op = self._start_operation(service, "UPDATE_SERVICE", back_to, rollback=previous_source)
        return {"Service": service.to_json(), "OperationId": op.id}

    def op_DeleteService(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        service = self._service(params)
        self._check_idle(service, "DeleteService")
        op = self._start_operation(service, "DELETE_SERVICE", "DELETED")
        return {"Service": service.to_json(), "OperationId": op.id}

    def op_ListOperations(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        service = self._service(params)
        # late_operation_seconds: a new operation is listed only after a while (eventual consistency).
        late = self.settings.seconds("late_operation_seconds")
        listed = [op for op in service.operations if epoch() - op.started_at >= late]
        newest_first = [op.to_json() for op in reversed(listed)]
        return _page(params, newest_first, "OperationSummaryList", default_max=20)

    # -- debug and shutdown ----------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        with self._lock:
            return {
                arn: {
                    "status": s.status,
                    "operations": [op.to_json() for op in reversed(s.operations)],
                    "history": [{"at": at, "status": status} for at, status in s.history],
                    "source": s.source,
                    "instance": s.instance,
                }
                for arn, s in self._services.items()
            }

    def health(self, name: str) -> tuple[int, dict[str, Any]]:
        """The app's health answer (see the module docstring)."""
        with self._lock:
            service = next((s for s in self._services.values() if s.name == name), None)
            if service is None:
                return 404, {"error": f"no App Runner service {name}"}
            resuming = bool(service.operations) and service.operations[-1].type in ("RESUME_SERVICE", "CREATE_SERVICE")
            if service.status == "PAUSED" or (service.status == "OPERATION_IN_PROGRESS" and resuming):
                return 503, {"status": service.status}
            url = service.environment.get("DATABASE_URL", "")
        hosts = rds_pg.endpoint_databases()
        host = (urlsplit(url).hostname or "").lower() if url else ""
        if host not in hosts:
            return 503, {"status": service.status, "error": "the database host does not resolve to a cluster"}
        try:
            with psycopg.connect(self.pg.url_for(hosts[host]), connect_timeout=3) as conn:
                try:
                    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
                except psycopg.Error:
                    row = None
        except psycopg.Error as e:
            return 503, {"status": service.status, "error": f"the database does not answer: {e}"}
        cluster = next((cid for cid, c in rds_pg.clusters_view().items() if c["database"] == hosts[host]), None)
        return 200, {"status": service.status, "database": cluster, "revision": row[0] if row else None}

    def shutdown(self) -> None:
        with self._lock:
            for t in self._timers:
                t.cancel()
            running = [s.app for s in self._services.values() if s.app is not None]
        procs.stop_group(running, 3.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _page(params: dict[str, Any], items: list[dict[str, Any]], key: str, default_max: int) -> dict[str, Any]:
    limit = params.get("MaxResults") or default_max
    if not isinstance(limit, int) or limit < 1:
        raise AppRunnerError("InvalidRequestException", "MaxResults must be a positive integer")
    try:
        start = int(params.get("NextToken") or 0)
    except ValueError as e:
        raise AppRunnerError("InvalidRequestException", "NextToken is invalid") from e
    out: dict[str, Any] = {key: items[start : start + limit]}
    if start + limit < len(items):
        out["NextToken"] = str(start + limit)
    return out
