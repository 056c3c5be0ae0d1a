"""RDS clusters backed by real PostgreSQL databases, with timed state changes.

moto keeps the RDS model and speaks the Query/XML protocol; this module wraps
a few of moto's backend methods and model properties (``install``):

* CreateDBCluster / RestoreDBClusterFromSnapshot: the cluster gets a database
  ``emu_<hex>`` (empty, or a copy of the snapshot's) and is ``creating`` for
  cluster_seconds / restore_seconds. The name is fixed at creation and kept
  on the cluster object, so it follows renames.
* RestoreDBClusterFromSnapshot takes from the snapshot only what a snapshot
  holds (engine, master user, database name, encryption and KMS key, port,
  storage size, zones, engine mode); every other setting is the request's or
  the API's default, as on AWS (moto alone copies the live source cluster's).
* Settings moto drops are kept and described (cluster: Performance Insights,
  enhanced monitoring, Database Insights mode, engine lifecycle support, local
  write forwarding; instance: Performance Insights; an Aurora instance's
  Database Insights mode is its cluster's). Aurora clusters default to
  StorageType ``aurora`` and accept ``aurora-iopt1``. HostedZoneId is the
  Region's, the same for every cluster.
* RestoreDBClusterToPointInTime: the new cluster's database is ``CREATE
  DATABASE ... TEMPLATE <source db>`` (the data now); a copy-on-write clone is
  ``creating`` for clone_seconds, a full copy for restore_seconds; it takes
  from the source what a point-in-time restore takes (engine and version,
  engine mode, master user, database name, encryption and KMS key, port,
  zones, character set), the rest from the request or the API's defaults;
  tags only as given. A clone's Endpoint is 127.0.0.1 and its Port a loopback
  port where a ``pgproxy.Proxy`` leads to its database, so a client given host
  and port reaches it without any rewriting; a full copy has the endpoints of
  any restored cluster.
  With ``RestoreToTime`` the data is the cluster's newest backup point at or
  before that time (``POST /_emulator/backup``: a copy of its database taken
  then, standing for Aurora's continuous backup); a cluster with no backup
  point restores the data now, and one whose backup points all come after the
  time is ``InvalidRestoreFault``.
* StopDBCluster (moto's, ``available`` only): a stopped cluster's endpoints
  and instance addresses reach nothing (``endpoint_databases`` leaves it out).
* ModifyDBCluster without a new identifier: ``modifying`` for modify_seconds.
* CreateDBClusterSnapshot (manual): ``CREATE DATABASE <snap> TEMPLATE
  <cluster db>`` at once (the snapshot is the data at that moment); the
  snapshot reports ``creating`` with a growing PercentProgress for
  snapshot_seconds, then ``available`` (or ``failed``: fail_snapshot).
* ModifyDBCluster with NewDBClusterIdentifier: visible under the new id at
  once, ``renaming`` for rename_seconds; renaming onto an existing id is
  DBClusterAlreadyExistsFault; the cluster's instances follow.
* CreateDBInstance: ``creating`` for instance_seconds.
* DeleteDBClusterSnapshot / DeleteDBCluster drop the database behind them.
* Endpoint is ``<id>.cluster-emu.<region>.rds.amazonaws.com`` (reader:
  ``cluster-ro-emu``), following renames.
* DescribeAccountAttributes (moto has none) reports the quotas.
"""

from __future__ import annotations

import datetime
import threading
import time
from typing import Any

from moto.core.responses import ActionResult
from moto.rds import models as rds_models
from moto.rds.exceptions import (
    DBClusterNotFoundError,
    DBClusterSnapshotNotFoundError,
    InvalidDBClusterStateFault,
    RDSClientError,
    SnapshotQuotaExceededFault,
)
from moto.rds.responses import RDSResponse

from locks import MOTO_LOCK
from pg import PgServer
from pgproxy import Proxy
from settings import Settings

DBCluster = rds_models.DBCluster
DBClusterSnapshot = rds_models.DBClusterSnapshot
DBInstance = rds_models.DBInstance
DBInstanceClustered = rds_models.DBInstanceClustered
RDSBackend = rds_models.RDSBackend

_settings: Settings | None = None
_pg: PgServer | None = None
_ctx = threading.local()  # set while a restore or a clone runs moto's create_db_cluster
_installed = False


def _now() -> float:
    return time.monotonic()


def _cfg() -> Settings:
    assert _settings is not None, "rds_pg.install() first"
    return _settings


def _server() -> PgServer:
    assert _pg is not None, "rds_pg.install() first"
    return _pg


def _busy(obj: Any, status: str, seconds: float) -> None:
    """Report ``status`` for ``seconds`` from now, then the stored status."""
    obj.__dict__["_emu_busy"] = (status, _now() + seconds)


def _busy_status(obj: Any) -> str | None:
    busy = obj.__dict__.get("_emu_busy")
    if busy and _now() < busy[1]:
        return busy[0]
    return None


# -- model properties -------------------------------------------------------


def _cluster_status_get(self: Any) -> str:
    busy = _busy_status(self)
    if busy:
        return busy
    raw = self.__dict__.get("_status", "available")
    # moto reports "creating" once and then "available"; our timing replaces that.
    return "available" if raw == "creating" else raw


def _cluster_status_set(self: Any, value: str) -> None:
    self.__dict__["_status"] = value


# A clone's writer and reader endpoint: its proxy listens there (Port is the proxy's).
CLONE_HOST = "127.0.0.1"


def _is_clone(cluster: Any) -> bool:
    return "_emu_proxy" in cluster.__dict__


def _cluster_endpoint(self: Any) -> str:
    if _is_clone(self):
        return CLONE_HOST
    return f"{self.db_cluster_identifier}.cluster-emu.{self.region}.rds.amazonaws.com"


def _cluster_reader_endpoint(self: Any) -> str:
    if _is_clone(self):
        return CLONE_HOST
    return f"{self.db_cluster_identifier}.cluster-ro-emu.{self.region}.rds.amazonaws.com"


def _instance_status_get(self: Any) -> str:
    return _busy_status(self) or self.__dict__.get("_emu_raw_status", "available")


def _instance_status_set(self: Any, value: str) -> None:
    self.__dict__["_emu_raw_status"] = value


def _snapshot_progress(self: Any) -> tuple[str, int]:
    timing = self.__dict__.get("_emu_timing")  # (started, seconds, final status)
    raw = self.__dict__.get("_emu_raw_status", "available")
    if timing is None:
        return raw, int(self.__dict__.get("_emu_raw_percent", 100))
    started, seconds, final = timing
    elapsed = _now() - started
    if elapsed < seconds:
        return "creating", min(99, int(100 * elapsed / seconds)) if seconds > 0 else 99
    return final, 100 if final == "available" else 99


def _snapshot_status_get(self: Any) -> str:
    return _snapshot_progress(self)[0]


def _snapshot_status_set(self: Any, value: str) -> None:
    self.__dict__["_emu_raw_status"] = value


def _snapshot_percent_get(self: Any) -> int:
    return _snapshot_progress(self)[1]


def _snapshot_percent_set(self: Any, value: int) -> None:
    self.__dict__["_emu_raw_percent"] = value


# -- backend method wrappers --------------------------------------------------


def _wrap(cls: Any, name: str, make: Any) -> None:
    original = getattr(cls, name)
    setattr(cls, name, make(original))


def _already_exists(cluster_id: str) -> RDSClientError:
    return RDSClientError("DBClusterAlreadyExistsFault", f"DB cluster already exists: {cluster_id}")


# Request key -> (attribute DescribeDB* reads, value when the request has none)
# for settings moto's models drop.
_CLUSTER_KEEP: dict[str, tuple[str, Any]] = {
    "monitoring_interval": ("monitoring_interval", 0),
    "monitoring_role_arn": ("monitoring_role_arn", None),
    "enable_performance_insights": ("performance_insights_enabled", False),
    "performance_insights_kms_key_id": ("performance_insights_kms_key_id", None),
    "performance_insights_retention_period": ("performance_insights_retention_period", None),
    "database_insights_mode": ("database_insights_mode", "standard"),
    "engine_lifecycle_support": ("engine_lifecycle_support", "open-source-rds-extended-support"),
    "enable_local_write_forwarding": ("local_write_forwarding_status", None),
}
_INSTANCE_KEEP: dict[str, tuple[str, Any]] = {
    "enable_performance_insights": ("performance_insights_enabled", False),
    "performance_insights_kms_key_id": ("performance_insights_kms_key_id", None),
    "performance_insights_retention_period": ("performance_insights_retention_period", None),
}
# The Region's hosted zone for RDS endpoints (us-east-1's), as AWS reports it for every cluster.
_HOSTED_ZONE_ID = "Z2R2ITUGPM61AM"


def _keep(obj: Any, kwargs: dict[str, Any], keep: dict[str, tuple[str, Any]], defaults: bool) -> None:
    for key, (attr, default) in keep.items():
        value = kwargs.get(key)
        if key == "enable_local_write_forwarding" and value is not None:
            value = "enabled" if value else "disabled"
        if value is not None:
            obj.__dict__[attr] = value
        elif defaults:
            obj.__dict__[attr] = default


def _create_db_cluster(original: Any) -> Any:
    def create_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
        cluster_id = kwargs["db_cluster_identifier"]
        if cluster_id in self.clusters:
            raise _already_exists(cluster_id)
        restoring = getattr(_ctx, "restoring", False)
        cloning = getattr(_ctx, "cloning", False)
        template = getattr(_ctx, "template", None)
        if str(kwargs.get("engine", "")).startswith("aurora"):
            # Aurora's storage types (moto knows only gp2/io1/standard); its size is always reported as 1.
            kwargs.setdefault("storage_type", "aurora")
            kwargs.setdefault("allocated_storage", 1)
        cluster = original(self, kwargs)
        _keep(cluster, kwargs, _CLUSTER_KEEP, defaults=True)
        cluster.hosted_zone_id = _HOSTED_ZONE_ID
        try:
            cluster.__dict__["_emu_db"] = _server().create(template=template)
        except Exception as e:
            self.clusters.pop(cluster_id, None)
            raise RDSClientError("InternalFailure", f"emulator: could not create the cluster's database: {e}") from e
        if cloning:
            server = _server()
            proxy = Proxy(server.host, server.port, cluster.__dict__["_emu_db"], server.user)
            cluster.__dict__["_emu_proxy"] = proxy
            cluster.port = proxy.port
        timing = "clone_seconds" if cloning else "restore_seconds" if restoring else "cluster_seconds"
        _busy(cluster, "creating", _cfg().seconds(timing))
        return cluster

    return create_db_cluster


# What a cluster snapshot holds, and so what a restore takes from it: cluster
# attribute -> CreateDBCluster key. Everything else comes from the request or
# is the API's default.
_SNAPSHOT_HOLDS: dict[str, str] = {
    "engine": "engine",
    "engine_mode": "engine_mode",
    "master_username": "master_username",
    "database_name": "database_name",
    "storage_encrypted": "storage_encrypted",
    "kms_key_id": "kms_key_id",
    "port": "port",
    "allocated_storage": "allocated_storage",
    "availability_zones": "availability_zones",
    "character_set_name": "character_set_name",
}


def _restore_db_cluster_from_snapshot(original: Any) -> Any:
    def restore_db_cluster_from_snapshot(self: Any, from_snapshot_id: str, overrides: dict[str, Any]) -> Any:
        target = overrides.get("db_cluster_identifier")
        if target in self.clusters:
            raise _already_exists(target)
        snapshots = self.describe_db_cluster_snapshots(
            db_cluster_identifier=None, db_snapshot_identifier=from_snapshot_id
        )
        if not snapshots:
            raise DBClusterSnapshotNotFoundError(from_snapshot_id)
        snapshot = snapshots[0]
        if snapshot.status != "available":
            raise RDSClientError(
                "InvalidDBClusterSnapshotStateFault",
                f"Cluster snapshot {from_snapshot_id} is in state {snapshot.status}, not available.",
            )
        held = snapshot.cluster
        props: dict[str, Any] = {}
        for attr, key in _SNAPSHOT_HOLDS.items():
            value = getattr(held, attr, None)
            if value is not None:
                props[key] = value
        # moto wants a password; the restored database keeps the snapshot's users and passwords.
        props["master_user_password"] = "kept-in-the-snapshot"
        props.update({k: v for k, v in overrides.items() if v is not None and k != "snapshot_identifier"})
        _ctx.restoring, _ctx.template = True, snapshot.__dict__.get("_emu_db")
        try:
            return self.create_db_cluster(props)
        finally:
            _ctx.restoring, _ctx.template = False, None

    return restore_db_cluster_from_snapshot


# What a point-in-time restore (and so a clone) takes from its source cluster:
# cluster attribute -> CreateDBCluster key. The rest comes from the request or
# is the API's default (subnet group, security groups, parameter group,
# deletion protection, IAM authentication, scaling, tags, ...).
_CLONE_TAKES: dict[str, str] = dict(_SNAPSHOT_HOLDS, engine_version="engine_version")
del _CLONE_TAKES["allocated_storage"]


def _restore_db_cluster_to_point_in_time(_original: Any) -> Any:
    def restore_db_cluster_to_point_in_time(self: Any, **params: Any) -> Any:
        target = params.get("db_cluster_identifier")
        source_id = params.get("source_db_cluster_identifier")
        if target in self.clusters:
            raise _already_exists(target)
        source = self.clusters.get(source_id)
        if source is None:
            raise DBClusterNotFoundError(source_id)
        latest = bool(params.get("use_latest_restorable_time"))
        at = params.get("restore_to_time")
        if latest == (at is not None):
            raise RDSClientError(
                "InvalidParameterCombination", "Specify exactly one of RestoreToTime and UseLatestRestorableTime"
            )
        if at is not None and params.get("restore_type") == "copy-on-write":
            raise RDSClientError(
                "InvalidParameterCombination", "RestoreToTime cannot be specified when RestoreType is copy-on-write"
            )
        if source.status != "available":
            raise InvalidDBClusterStateFault(f"DbCluster {source_id} is in {source.status} state, not available.")
        template = source.__dict__.get("_emu_db")
        if at is not None:
            template = _backup_at(source, at, template)
        props: dict[str, Any] = {}
        for attr, key in _CLONE_TAKES.items():
            value = getattr(source, attr, None)
            if value is not None:
                props[key] = value
        props["master_user_password"] = "kept-from-the-source"
        skip = {"source_db_cluster_identifier", "restore_type", "restore_to_time", "use_latest_restorable_time"}
        props.update({k: v for k, v in params.items() if v is not None and k not in skip})
        # A copy-on-write clone is reached at 127.0.0.1 and a port of its own
        # (a proxy); a full copy is a restore like one from a snapshot.
        clone = params.get("restore_type") == "copy-on-write"
        _ctx.cloning, _ctx.restoring, _ctx.template = clone, not clone, template
        try:
            return self.create_db_cluster(props)
        finally:
            _ctx.cloning, _ctx.restoring, _ctx.template = False, False, None

    return restore_db_cluster_to_point_in_time


def _epoch(at: Any) -> float:
    if isinstance(at, str):
        at = datetime.datetime.fromisoformat(at.replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.timezone.utc)
    return at.timestamp()


def _backup_at(source: Any, at: Any, now_db: Any) -> Any:
    """The database of ``source``'s newest backup point at or before ``at``."""
    points = source.__dict__.get("_emu_backups", [])
    if not points:
        return now_db
    wanted = _epoch(at)
    earlier = [db for when, db in points if when <= wanted]
    if not earlier:
        raise RDSClientError(
            "InvalidRestoreFault",
            f"emulator: DB cluster {source.db_cluster_identifier} has no backup point at or before {at}",
        )
    return earlier[-1]


def take_backup(cluster_id: str) -> dict[str, Any]:
    """POST /_emulator/backup: a backup point of ``cluster_id``'s data now."""
    with MOTO_LOCK:
        for backend in _backends():
            cluster = backend.clusters.get(cluster_id)
            if cluster is None:
                continue
            db = _server().create(template=cluster.__dict__.get("_emu_db"))
            when = time.time()
            cluster.__dict__.setdefault("_emu_backups", []).append((when, db))
            return {"cluster": cluster_id, "database": db, "at": when}
    raise ValueError(f"no cluster {cluster_id}")


def _stop_db_cluster(_original: Any) -> Any:
    """moto's check (``available`` only), without its deep copy of the cluster
    (the emulator's additions on it do not copy); the answer describes the
    cluster as it is now."""

    def stop_db_cluster(self: Any, cluster_identifier: str) -> Any:
        cluster = self.clusters.get(cluster_identifier)
        if cluster is None:
            raise DBClusterNotFoundError(cluster_identifier)
        if cluster.status != "available":
            raise InvalidDBClusterStateFault(
                f"DbCluster {cluster_identifier} is in {cluster.status} state but expected it to be one of available."
            )
        cluster.status = "stopped"
        return cluster

    return stop_db_cluster


def _manual_snapshot_count(backend: Any) -> int:
    return sum(1 for s in backend.cluster_snapshots.values() if s.snapshot_type == "manual")


def _create_db_cluster_snapshot(original: Any) -> Any:
    def create_db_cluster_snapshot(self: Any, *args: Any, **kwargs: Any) -> Any:
        names = ["db_cluster_identifier", "db_cluster_snapshot_identifier", "snapshot_type", "tags"]
        params = dict(zip(names, args, strict=False))
        params.update(kwargs)
        if params.get("snapshot_type", "manual") != "manual":
            return original(self, *args, **kwargs)
        cluster_id = params.get("db_cluster_identifier")
        snapshot_id = params.get("db_cluster_snapshot_identifier")
        cluster = self.clusters.get(cluster_id)
        if cluster is None:
            raise DBClusterNotFoundError(cluster_id)
        if snapshot_id not in self.cluster_snapshots:
            if _manual_snapshot_count(self) >= int(_cfg().get("snapshot_quota")):
                raise SnapshotQuotaExceededFault()
            if cluster.status != "available":
                raise InvalidDBClusterStateFault(f"DbCluster {cluster_id} is in {cluster.status} state, not available.")
        snapshot = original(self, *args, **kwargs)
        final = "available"
        if _cfg().take_flag("fail_snapshot"):
            final = "failed"
        else:
            try:
                snapshot.__dict__["_emu_db"] = _server().create(template=cluster.__dict__.get("_emu_db"))
            except Exception as e:  # noqa: BLE001 - reported as a failed snapshot
                snapshot.__dict__["_emu_error"] = str(e)
                final = "failed"
        snapshot.__dict__["_emu_timing"] = (_now(), _cfg().seconds("snapshot_seconds"), final)
        snapshot.__dict__["_emu_started_epoch"] = time.time()  # for ready_at in snapshots_view
        return snapshot

    return create_db_cluster_snapshot


def _copy_db_cluster_snapshot(original: Any) -> Any:
    def copy_db_cluster_snapshot(self: Any, *args: Any, **kwargs: Any) -> Any:
        source_id = kwargs.get("source_db_cluster_snapshot_identifier", args[0] if args else None)
        snapshot = original(self, *args, **kwargs)
        source = self.cluster_snapshots.get(source_id)
        template = source.__dict__.get("_emu_db") if source is not None else None
        if template:
            snapshot.__dict__["_emu_db"] = _server().create(template=template)
        return snapshot

    return copy_db_cluster_snapshot


def _delete_db_cluster_snapshot(original: Any) -> Any:
    def delete_db_cluster_snapshot(self: Any, db_snapshot_identifier: str) -> Any:
        snapshot = original(self, db_snapshot_identifier)
        _server().drop(snapshot.__dict__.get("_emu_db"))
        return snapshot

    return delete_db_cluster_snapshot


def _delete_db_cluster(original: Any) -> Any:
    def delete_db_cluster(self: Any, cluster_identifier: str, snapshot_name: str | None = None) -> Any:
        cluster = original(self, cluster_identifier, snapshot_name)
        proxy = cluster.__dict__.get("_emu_proxy")
        if proxy is not None:
            proxy.close()
        _server().drop(cluster.__dict__.get("_emu_db"))
        return cluster

    return delete_db_cluster


def _modify_db_cluster(original: Any) -> Any:
    def modify_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
        cluster_id = kwargs["db_cluster_identifier"]
        if cluster_id not in self.clusters:
            raise DBClusterNotFoundError(cluster_id)
        cluster = self.clusters[cluster_id]
        new_id = kwargs.get("new_db_cluster_identifier")
        renaming = bool(new_id) and new_id != cluster_id
        if renaming:
            if new_id in self.clusters:
                raise _already_exists(new_id)
            if cluster.status != "available":
                raise InvalidDBClusterStateFault(
                    f"DbCluster {cluster_id} is in {cluster.status} state but expected it to be one of available."
                )
        keep = {k: kwargs[k] for k in _CLUSTER_KEEP if kwargs.get(k) is not None}
        result = original(self, kwargs)
        _keep(cluster, keep, _CLUSTER_KEEP, defaults=False)
        _keep(result, keep, _CLUSTER_KEEP, defaults=False)
        if not renaming:
            seconds = _cfg().seconds("modify_seconds")
            _busy(cluster, "modifying", seconds)
            _busy(result, "modifying", seconds)
        if renaming:
            for instance in self.databases.values():
                if isinstance(instance, DBInstanceClustered) and instance.db_cluster_identifier == cluster_id:
                    instance.db_cluster_identifier = cluster.db_cluster_identifier
            seconds = _cfg().seconds("rename_seconds")
            _busy(cluster, "renaming", seconds)
            _busy(result, "renaming", seconds)
        return result

    return modify_db_cluster


def _create_db_instance(original: Any) -> Any:
    def create_db_instance(self: Any, db_kwargs: dict[str, Any]) -> Any:
        instance = original(self, db_kwargs)
        _keep(instance, db_kwargs, _INSTANCE_KEEP, defaults=True)
        _busy(instance, "creating", _cfg().seconds("instance_seconds"))
        return instance

    return create_db_instance


def _instance_insights_mode(self: Any) -> str:
    """An Aurora instance's Database Insights mode is its cluster's."""
    return self.cluster.__dict__.get("database_insights_mode", "standard")


def _describe_account_attributes(self: Any) -> ActionResult:
    if _cfg().get("sparse_no_account_attributes"):
        raise RDSClientError("InvalidAction", "emulator: DescribeAccountAttributes is not implemented (sparse switch)")
    backend = self.backend
    quotas = [
        {
            "AccountQuotaName": "ManualClusterSnapshots",
            "Used": _manual_snapshot_count(backend),
            "Max": int(_cfg().get("snapshot_quota")),
        },
        {"AccountQuotaName": "DBClusters", "Used": len(backend.clusters), "Max": 40},
        {"AccountQuotaName": "DBInstances", "Used": len(backend.databases), "Max": 40},
        {
            "AccountQuotaName": "ManualSnapshots",
            "Used": sum(1 for s in backend.database_snapshots.values() if s.snapshot_type == "manual"),
            "Max": 100,
        },
    ]
    return ActionResult({"AccountQuotas": quotas})


def _set_http_endpoint(self: Any, enabled: bool) -> ActionResult:
    """EnableHttpEndpoint / DisableHttpEndpoint (moto lacks both): the RDS Data API
    switch of a provisioned or Serverless v2 cluster, by its ARN; DescribeDBClusters
    shows it as HttpEndpointEnabled. (On Serverless v1 the rule catalogue refuses it.)"""
    arn = self.params.get("ResourceArn") or ""
    for cluster in self.backend.clusters.values():
        if cluster.db_cluster_arn == arn:
            cluster.__dict__["_enable_http_endpoint"] = enabled
            return ActionResult({"ResourceArn": arn, "HttpEndpointEnabled": enabled})
    raise RDSClientError("ResourceNotFoundFault", f"The specified resource ARN {arn} wasn't found.")


def _enable_http_endpoint(self: Any) -> ActionResult:
    return _set_http_endpoint(self, True)


def _disable_http_endpoint(self: Any) -> ActionResult:
    return _set_http_endpoint(self, False)


def install(settings: Settings, pg: PgServer) -> None:
    global _settings, _pg, _installed
    _settings, _pg = settings, pg
    if _installed:
        return
    _installed = True
    DBCluster.status = property(_cluster_status_get, _cluster_status_set)
    DBCluster.endpoint = property(_cluster_endpoint)
    DBCluster.reader_endpoint = property(_cluster_reader_endpoint)
    DBInstance.status = property(_instance_status_get, _instance_status_set)
    DBInstanceClustered.database_insights_mode = property(_instance_insights_mode)
    DBClusterSnapshot.status = property(_snapshot_status_get, _snapshot_status_set)
    DBClusterSnapshot.percent_progress = property(_snapshot_percent_get, _snapshot_percent_set)
    _wrap(RDSBackend, "create_db_cluster", _create_db_cluster)
    _wrap(RDSBackend, "restore_db_cluster_from_snapshot", _restore_db_cluster_from_snapshot)
    _wrap(RDSBackend, "restore_db_cluster_to_point_in_time", _restore_db_cluster_to_point_in_time)
    _wrap(RDSBackend, "create_db_cluster_snapshot", _create_db_cluster_snapshot)
    _wrap(RDSBackend, "stop_db_cluster", _stop_db_cluster)
    _wrap(RDSBackend, "copy_db_cluster_snapshot", _copy_db_cluster_snapshot)
    _wrap(RDSBackend, "delete_db_cluster_snapshot", _delete_db_cluster_snapshot)
    _wrap(RDSBackend, "delete_db_cluster", _delete_db_cluster)
    _wrap(RDSBackend, "modify_db_cluster", _modify_db_cluster)
    _wrap(RDSBackend, "create_db_instance", _create_db_instance)
    RDSResponse.describe_account_attributes = _describe_account_attributes
    RDSResponse.enable_http_endpoint = _enable_http_endpoint
    RDSResponse.disable_http_endpoint = _disable_http_endpoint


# -- views for the debug endpoint and the ECS runner ----------------------------


def _backends() -> list[Any]:
    from moto.rds.models import rds_backends

    return [backend for _, _, backend in rds_backends.iter_backends()]


def clusters_view() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with MOTO_LOCK:
        for backend in _backends():
            for cluster_id, cluster in backend.clusters.items():
                db = cluster.__dict__.get("_emu_db")
                out[cluster_id] = {
                    "database": db,
                    "url": _server().url_for(db) if db else None,
                    "status": cluster.status,
                    "endpoint": cluster.endpoint,
                    "port": cluster.port,
                    "clone": _is_clone(cluster),
                    "region": backend.region_name,
                }
    return out


def snapshots_view() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with MOTO_LOCK:
        for backend in _backends():
            for snapshot_id, snapshot in backend.cluster_snapshots.items():
                db = snapshot.__dict__.get("_emu_db")
                entry = {
                    "database": db,
                    "url": _server().url_for(db) if db else None,
                    "status": snapshot.status,
                    "percent": snapshot.percent_progress,
                    "cluster": snapshot.db_cluster_identifier,
                    "type": snapshot.snapshot_type,
                    "region": backend.region_name,
                }
                if "_emu_error" in snapshot.__dict__:
                    entry["error"] = snapshot.__dict__["_emu_error"]
                timing = snapshot.__dict__.get("_emu_timing")
                if timing is not None and "_emu_started_epoch" in snapshot.__dict__:
                    # Epoch seconds of the change to the final status (ground truth for benchmarks).
                    entry["ready_at"] = round(snapshot.__dict__["_emu_started_epoch"] + timing[1], 4)
                out[snapshot_id] = entry
    return out


def endpoint_databases() -> dict[str, str]:
    """Every host name that reaches a cluster (writer and reader endpoints, the
    addresses of its instances) -> the name of the cluster's database, now.
    Clones are left out: their endpoint and port reach them as they are."""
    out: dict[str, str] = {}
    with MOTO_LOCK:
        for backend in _backends():
            for cluster in backend.clusters.values():
                db = cluster.__dict__.get("_emu_db")
                if not db or _is_clone(cluster) or cluster.status == "stopped":
                    continue
                out[cluster.endpoint.lower()] = db
                out[cluster.reader_endpoint.lower()] = db
            for instance in backend.databases.values():
                if isinstance(instance, DBInstanceClustered):
                    cluster = backend.clusters.get(instance.db_cluster_identifier)
                    if cluster is None or _is_clone(cluster) or cluster.status == "stopped":
                        continue
                    db = cluster.__dict__.get("_emu_db")
                    if db:
                        out[instance.address.lower()] = db
    return out
