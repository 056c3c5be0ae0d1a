"""The catalogue of prose rules: what the API references say in words and the
service models cannot express. Enforced by default (strict mode); ``--lax``
turns them off with the model validation.

One ``Rule`` per entry: service and operation, the rule in words, where it is
written (the API reference page and the quoted sentence), and the check. A
check gets the request's input (as the model names its members) and a
``Context``; it raises ``Rejection`` with the code and message the service
answers. ``python rules.py`` prints the catalogue as a table.

Rules that look at state (a cluster's engine mode, its restorable window, a
RunTask client token) read moto's backends under ``locks.MOTO_LOCK`` or the
ECS runner's token record.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from validate import Rejection


@dataclass
class Context:
    region: str
    operation: str = ""
    ecs: Any = None  # ecs_runner.EcsRunner: the RunTask client tokens
    apprunner: Any = None  # apprunner.AppRunner: each service's source kind


@dataclass(frozen=True)
class Rule:
    service: str  # botocore's name: ecs, rds, logs, apprunner, s3, cloudformation
    operations: tuple[str, ...]
    rule: str
    source: str
    check: Callable[[dict[str, Any], Context], None]


def _ecs_invalid(message: str) -> Rejection:
    return Rejection("InvalidParameterException", message)


def _rds(code: str, message: str) -> Rejection:
    return Rejection(code, message)


# -- ECS -------------------------------------------------------------------------------------

_LIST_TASKS_FILTERS = ("family", "serviceName", "containerInstance", "desiredStatus", "launchType", "daemonName")


def _list_tasks_started_by_alone(p: dict[str, Any], _c: Context) -> None:
    if p.get("startedBy") is not None and any(p.get(k) is not None for k in _LIST_TASKS_FILTERS):
        raise _ecs_invalid("cannot specify startedBy with other arguments")


def _list_tasks_max_results(p: dict[str, Any], _c: Context) -> None:
    n = p.get("maxResults")
    if n is not None and not 1 <= n <= 100:
        raise _ecs_invalid("maxResults must be between 1 and 100.")


def _run_task_client_token(p: dict[str, Any], _c: Context) -> None:
    token = p.get("clientToken")
    if token is None:
        return
    if not 1 <= len(token) <= 64:
        raise _ecs_invalid("clientToken must be 1 to 64 characters long.")
    if any(not 33 <= ord(ch) <= 126 for ch in token):
        raise _ecs_invalid("clientToken may contain only characters in the range 33-126.")


def _run_task_count(p: dict[str, Any], _c: Context) -> None:
    n = p.get("count")
    if n is not None and not 1 <= n <= 10:
        raise _ecs_invalid("count must be between 1 and 10.")


_STARTED_BY = re.compile(r"[A-Za-z0-9_/-]{1,128}")


def _run_task_started_by(p: dict[str, Any], _c: Context) -> None:
    v = p.get("startedBy")
    if v is not None and _STARTED_BY.fullmatch(v) is None:
        raise _ecs_invalid(
            "startedBy may contain up to 128 letters, numbers, hyphens, forward slashes and underscores."
        )


def _run_task_launch_type_or_strategy(p: dict[str, Any], _c: Context) -> None:
    if p.get("launchType") is not None and p.get("capacityProviderStrategy"):
        raise _ecs_invalid("Specifying both a launch type and capacity provider strategy is not supported.")
    if len(p.get("capacityProviderStrategy") or []) > 20:
        raise _ecs_invalid("A capacity provider strategy can contain a maximum of 20 capacity providers.")


def _run_task_placement(p: dict[str, Any], _c: Context) -> None:
    if len(p.get("placementConstraints") or []) > 10:
        raise _ecs_invalid("You can specify up to 10 placement constraints for each task.")
    if len(p.get("placementStrategy") or []) > 5:
        raise _ecs_invalid("You can specify a maximum of 5 placement strategy rules for each task.")


def _ecs_tags(p: dict[str, Any], _c: Context) -> None:
    seen = set()
    for tag in p.get("tags") or []:
        key, value = tag.get("key") or "", tag.get("value") or ""
        if key.lower().startswith("aws:") or value.lower().startswith("aws:"):
            raise _ecs_invalid("Tag keys and values may not start with the reserved prefix 'aws:'.")
        if key in seen:
            raise _ecs_invalid(f"Duplicate tag key '{key}'.")
        seen.add(key)


def _run_task_token_conflict(p: dict[str, Any], c: Context) -> None:
    token = p.get("clientToken")
    if not token or c.ecs is None:
        return
    existing = c.ecs.token_conflict(p)
    if existing:
        raise Rejection(
            "ConflictException",
            f"The clientToken {token} was already used with different parameters for {', '.join(existing)}.",
            extra={"resourceIds": existing},
        )


def _stop_task_reason(p: dict[str, Any], _c: Context) -> None:
    reason = p.get("reason")
    if reason is not None and len(reason) > 255:
        raise _ecs_invalid("Reason must be less than or equal to 255 characters.")


def _describe_tasks_count(p: dict[str, Any], _c: Context) -> None:
    tasks = p.get("tasks")
    if not tasks:
        raise _ecs_invalid("Tasks cannot be empty.")
    if len(tasks) > 100:
        raise _ecs_invalid("Tasks cannot have more than 100 elements")


_FAMILY = re.compile(r"[A-Za-z0-9_-]{1,255}")


def _register_family(p: dict[str, Any], _c: Context) -> None:
    family = p.get("family")
    if family is not None and _FAMILY.fullmatch(family) is None:
        raise Rejection(
            "ClientException",
            "Family contains invalid characters: up to 255 letters, numbers, hyphens and underscores are allowed.",
        )


# -- RDS -------------------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|-(?!-))*")


def _valid_identifier(value: str, longest: int = 63) -> bool:
    return (
        1 <= len(value) <= longest
        and _IDENTIFIER.fullmatch(value) is not None
        and not value.endswith("-")
    )


def _identifier_error(name: str) -> Rejection:
    return _rds(
        "InvalidParameterValue",
        f"The parameter {name} is not a valid identifier. Identifiers must begin with a letter; "
        "must contain only ASCII letters, digits, and hyphens; and must not end with a hyphen or "
        "contain two consecutive hyphens.",
    )


# Members that name a new resource: operation -> (member, longest).
_NEW_IDENTIFIERS: dict[str, tuple[tuple[str, int], ...]] = {
    "CreateDBCluster": (("DBClusterIdentifier", 63),),
    "CreateDBInstance": (("DBInstanceIdentifier", 63),),
    "CreateDBClusterSnapshot": (("DBClusterSnapshotIdentifier", 63),),
    "CopyDBClusterSnapshot": (("TargetDBClusterSnapshotIdentifier", 63),),
    "RestoreDBClusterFromSnapshot": (("DBClusterIdentifier", 63),),
    "RestoreDBClusterToPointInTime": (("DBClusterIdentifier", 63),),
    "ModifyDBCluster": (("NewDBClusterIdentifier", 63),),
    "DeleteDBCluster": (("FinalDBSnapshotIdentifier", 255),),
}


def _rds_new_identifiers(p: dict[str, Any], c: Context) -> None:
    for member, longest in _NEW_IDENTIFIERS.get(c.operation, ()):
        value = p.get(member)
        if value is not None and not _valid_identifier(value, longest):
            raise _identifier_error(member)


_SNAPSHOT_ARN = re.compile(r"arn:aws[a-z-]*:rds:[a-z0-9-]+:\d{12}:(cluster-snapshot|snapshot):.+")


def _snapshot_reference_ok(value: str) -> bool:
    """A cluster snapshot named by its identifier, an automated snapshot's
    ``rds:<cluster>-<date>`` identifier, or an ARN (a shared snapshot)."""
    if value.startswith("rds:"):
        return _valid_identifier(value[4:], 255)
    return _valid_identifier(value, 255) or _SNAPSHOT_ARN.fullmatch(value) is not None


def _rds_snapshot_reference(p: dict[str, Any], c: Context) -> None:
    member = "SnapshotIdentifier" if c.operation == "RestoreDBClusterFromSnapshot" else "DBClusterSnapshotIdentifier"
    value = p.get(member)
    if value is not None and not _snapshot_reference_ok(value):
        raise _identifier_error(member)


def _describe_snapshots_combination(p: dict[str, Any], _c: Context) -> None:
    if p.get("DBClusterSnapshotIdentifier") is not None and p.get("DBClusterIdentifier") is not None:
        raise _rds(
            "InvalidParameterCombination",
            "DBClusterSnapshotIdentifier can't be used in conjunction with DBClusterIdentifier.",
        )
    ident = p.get("DBClusterSnapshotIdentifier") or ""
    if ident.startswith("rds:") and p.get("SnapshotType") is None:
        raise _rds(
            "InvalidParameterCombination",
            "SnapshotType must be specified to describe an automated snapshot by its identifier.",
        )


def _rds_tags(p: dict[str, Any], _c: Context) -> None:
    tags = list(p.get("Tags") or [])
    for spec in p.get("TagSpecifications") or []:
        tags.extend(spec.get("Tags") or [])
    for tag in tags:
        key, value = tag.get("Key"), tag.get("Value")
        if key is None or not 1 <= len(key) <= 128:
            raise _rds("InvalidParameterValue", "A tag key must be 1 to 128 characters long.")
        if value is not None and len(value) > 256:
            raise _rds("InvalidParameterValue", "A tag value can be at most 256 characters long.")
        for text in (key, value or ""):
            if text.lower().startswith(("aws:", "rds:")):
                raise _rds("InvalidParameterValue", f"Tag keys and values can't be prefixed with aws: or rds: ({text!r}).")


def _moto_cluster(region: str, ident: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.rds.models import rds_backends

    from locks import MOTO_LOCK

    with MOTO_LOCK:
        backend = rds_backends[DEFAULT_ACCOUNT_ID][region]
        if ident.startswith("arn:"):
            for cluster in backend.clusters.values():
                if cluster.db_cluster_arn == ident:
                    return cluster
            return None
        return backend.clusters.get(ident) or backend.clusters.get(ident.lower())


def _stop_aurora_only(p: dict[str, Any], c: Context) -> None:
    cluster = _moto_cluster(c.region, p.get("DBClusterIdentifier") or "")
    if cluster is None:
        return  # the operation answers DBClusterNotFoundFault
    if not str(getattr(cluster, "engine", "")).startswith("aurora"):
        raise _rds("InvalidDBClusterStateFault", "This operation only applies to Aurora DB clusters.")


def _modify_http_endpoint(p: dict[str, Any], c: Context) -> None:
    if p.get("EnableHttpEndpoint") is None:
        return
    cluster = _moto_cluster(c.region, p.get("DBClusterIdentifier") or "")
    if cluster is None:
        return  # the operation answers DBClusterNotFoundFault
    if getattr(cluster, "engine_mode", "provisioned") != "serverless":
        raise _rds(
            "InvalidParameterCombination",
            "EnableHttpEndpoint applies only to Aurora Serverless v1 DB clusters; to enable or disable the "
            "HTTP endpoint for an Aurora Serverless v2 or provisioned DB cluster, use the EnableHttpEndpoint "
            "and DisableHttpEndpoint operations.",
        )


def _http_endpoint_action(p: dict[str, Any], c: Context) -> None:
    cluster = _moto_cluster(c.region, p.get("ResourceArn") or "")
    if cluster is not None and getattr(cluster, "engine_mode", "provisioned") == "serverless":
        raise _rds(
            "InvalidResourceStateFault",
            "This operation applies only to Aurora Serverless v2 and provisioned DB clusters; for Aurora "
            "Serverless v1 use the EnableHttpEndpoint parameter of ModifyDBCluster.",
        )


def _pitr_exactly_one_time(p: dict[str, Any], _c: Context) -> None:
    latest = bool(p.get("UseLatestRestorableTime"))
    if latest == (p.get("RestoreToTime") is not None):
        raise _rds("InvalidParameterCombination", "Specify exactly one of RestoreToTime and UseLatestRestorableTime")


def _pitr_time_not_cow(p: dict[str, Any], _c: Context) -> None:
    if p.get("RestoreToTime") is not None and p.get("RestoreType") == "copy-on-write":
        raise _rds("InvalidParameterCombination", "RestoreToTime cannot be specified when RestoreType is copy-on-write")


def _utc(value: Any) -> datetime.datetime | None:
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    return None


def _pitr_time_in_window(p: dict[str, Any], c: Context) -> None:
    at = _utc(p.get("RestoreToTime"))
    if at is None:
        return
    cluster = _moto_cluster(c.region, p.get("SourceDBClusterIdentifier") or "")
    if cluster is None:
        return  # DBClusterNotFoundFault from the operation
    earliest = _utc(getattr(cluster, "earliest_restorable_time", None))
    latest = datetime.datetime.now(datetime.timezone.utc)
    if (earliest is not None and at < earliest) or at > latest:
        shown = earliest.isoformat() if earliest else "?"
        raise _rds(
            "InvalidRestoreFault",
            f"The restore time {at.isoformat()} is outside the restorable window of DB cluster "
            f"{cluster.db_cluster_identifier} ({shown} to {latest.isoformat()}).",
        )


def _delete_cluster_final_snapshot(p: dict[str, Any], _c: Context) -> None:
    skip = bool(p.get("SkipFinalSnapshot"))
    final = p.get("FinalDBSnapshotIdentifier")
    if skip and final is not None:
        raise _rds(
            "InvalidParameterCombination",
            "FinalDBSnapshotIdentifier can not be specified when deleting a cluster with SkipFinalSnapshot=true.",
        )
    if not skip and final is None:
        raise _rds(
            "InvalidParameterCombination",
            "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.",
        )


# -- CloudWatch Logs -------------------------------------------------------------------------


def _logs_group_one_of(p: dict[str, Any], _c: Context) -> None:
    if (p.get("logGroupName") is None) == (p.get("logGroupIdentifier") is None):
        raise Rejection(
            "InvalidParameterException", "You must include either logGroupIdentifier or logGroupName, but not both."
        )


def _filter_prefix_or_names(p: dict[str, Any], _c: Context) -> None:
    if p.get("logStreamNamePrefix") is not None and p.get("logStreamNames"):
        raise Rejection(
            "InvalidParameterException", "logStreamNames and logStreamNamePrefix are mutually exclusive"
        )


# -- App Runner ------------------------------------------------------------------------------


def _update_same_source_kind(p: dict[str, Any], c: Context) -> None:
    source = p.get("SourceConfiguration")
    if not isinstance(source, dict) or c.apprunner is None:
        return
    had = c.apprunner.source_kinds(p.get("ServiceArn") or "")
    if had is None:
        return  # ResourceNotFoundException from the operation
    given = {k for k in ("CodeRepository", "ImageRepository") if source.get(k)}
    if given and given != had:
        raise Rejection(
            "InvalidRequestException",
            f"You can't switch a service's source from {' '.join(sorted(had)) or 'none'} to "
            f"{' '.join(sorted(given))}; UpdateService must give the SourceConfiguration member it was created with.",
        )


# -- S3 --------------------------------------------------------------------------------------


def _put_if_none_match_star(p: dict[str, Any], _c: Context) -> None:
    value = p.get("IfNoneMatch")
    if value is not None and value.strip() != "*":
        raise Rejection(
            "NotImplemented",
            "A header you provided implies functionality that is not implemented: If-None-Match expects '*'.",
            status=501,
        )


# -- the catalogue ---------------------------------------------------------------------------

ECS_REF = "Amazon ECS API Reference"
RDS_REF = "Amazon RDS API Reference"
LOGS_REF = "Amazon CloudWatch Logs API Reference"
S3_REF = "Amazon S3 API Reference"

CATALOGUE: tuple[Rule, ...] = (
    Rule(
        "ecs",
        ("ListTasks",),
        "startedBy must be the only filter: not with family, serviceName, containerInstance, desiredStatus, "
        "launchType or daemonName → InvalidParameterException 'cannot specify startedBy with other arguments'",
        f"{ECS_REF}, ListTasks, startedBy: 'When you specify startedBy as the filter, it must be the only filter "
        "that you use.'",
        _list_tasks_started_by_alone,
    ),
    Rule(
        "ecs",
        ("ListTasks",),
        "maxResults between 1 and 100 → InvalidParameterException",
        f"{ECS_REF}, ListTasks, maxResults: 'This value can be between 1 and 100.'",
        _list_tasks_max_results,
    ),
    Rule(
        "ecs",
        ("RunTask",),
        "clientToken at most 64 characters, each in the range 33-126 → InvalidParameterException",
        f"{ECS_REF}, RunTask, clientToken: 'Up to 64 characters are allowed. The valid characters are characters "
        "in the range of 33-126, inclusive.'",
        _run_task_client_token,
    ),
    Rule(
        "ecs",
        ("RunTask",),
        "a clientToken used again with different parameters → ConflictException naming the tasks already "
        "started with it (message and resourceIds); the same parameters return those tasks",
        f"{ECS_REF}, RunTask, clientToken: 'It must be unique and is case sensitive.'; Errors, ConflictException: "
        "'The request could not be processed because of conflict in the current state of the resource.' "
        "(resourceIds: 'The existing task ARNs which are already associated with the clientToken.')",
        _run_task_token_conflict,
    ),
    Rule(
        "ecs",
        ("RunTask",),
        "count between 1 and 10 → InvalidParameterException",
        f"{ECS_REF}, RunTask, count: 'You can specify up to 10 tasks for each call.'",
        _run_task_count,
    ),
    Rule(
        "ecs",
        ("RunTask",),
        "startedBy: up to 128 letters, digits, hyphens, forward slashes, underscores → InvalidParameterException",
        f"{ECS_REF}, RunTask, startedBy: 'Up to 128 letters (uppercase and lowercase), numbers, hyphens (-), "
        "forward slash (/), and underscores (_) are allowed.'",
        _run_task_started_by,
    ),
    Rule(
        "ecs",
        ("RunTask",),
        "launchType not with capacityProviderStrategy; at most 20 capacity providers → InvalidParameterException",
        f"{ECS_REF}, RunTask, capacityProviderStrategy: 'If a capacityProviderStrategy is specified, the "
        "launchType parameter must be omitted.' 'A capacity provider strategy can contain a maximum of 20 "
        "capacity providers.'",
        _run_task_launch_type_or_strategy,
    ),
    Rule(
        "ecs",
        ("RunTask",),
        "at most 10 placement constraints and 5 placement strategy rules → InvalidParameterException",
        f"{ECS_REF}, RunTask, placementConstraints: 'You can specify up to 10 constraints for each task'; "
        "placementStrategy: 'You can specify a maximum of 5 strategy rules for each task.'",
        _run_task_placement,
    ),
    Rule(
        "ecs",
        ("RunTask", "RegisterTaskDefinition", "TagResource"),
        "tag keys unique; no key or value starting with aws: (any case) → InvalidParameterException "
        "(lengths and count are the model's)",
        f"{ECS_REF}, RunTask, tags: 'For each resource, each tag key must be unique' … 'Do not use aws:, AWS:, "
        "or any upper or lowercase combination of such as a prefix for either keys or values as it is reserved "
        "for Amazon Web Services use.'",
        _ecs_tags,
    ),
    Rule(
        "ecs",
        ("StopTask",),
        "reason at most 255 characters → InvalidParameterException",
        f"{ECS_REF}, StopTask, reason: 'Up to 255 characters are allowed in this message.' (the reference's "
        "earlier editions; the limit stands)",
        _stop_task_reason,
    ),
    Rule(
        "ecs",
        ("DescribeTasks",),
        "tasks: 1 to 100 entries → InvalidParameterException",
        f"{ECS_REF}, DescribeTasks, tasks: 'A list of up to 100 task IDs or full ARN entries.'",
        _describe_tasks_count,
    ),
    Rule(
        "ecs",
        ("RegisterTaskDefinition",),
        "family: up to 255 letters, digits, underscores, hyphens → ClientException",
        f"{ECS_REF}, RegisterTaskDefinition, family: 'Up to 255 letters (uppercase and lowercase), numbers, "
        "underscores, and hyphens are allowed.'",
        _register_family,
    ),
    Rule(
        "rds",
        tuple(_NEW_IDENTIFIERS),
        "a new identifier (cluster, instance, snapshot; NewDBClusterIdentifier; a final snapshot's) has 1-63 "
        "letters, digits or hyphens (a final snapshot's 1-255), starts with a letter, has no two consecutive "
        "hyphens and no trailing hyphen → InvalidParameterValue",
        f"{RDS_REF}, CreateDBCluster / CreateDBInstance / CreateDBClusterSnapshot / RestoreDBClusterFromSnapshot "
        "/ RestoreDBClusterToPointInTime / ModifyDBCluster (NewDBClusterIdentifier): 'Must contain from 1 to 63 "
        "letters, numbers, or hyphens. First character must be a letter. Can't end with a hyphen or contain two "
        "consecutive hyphens.'; DeleteDBCluster, FinalDBSnapshotIdentifier: 'Must be 1 to 255 letters, numbers, "
        "or hyphens.'",
        _rds_new_identifiers,
    ),
    Rule(
        "rds",
        ("RestoreDBClusterFromSnapshot", "DescribeDBClusterSnapshots", "DeleteDBClusterSnapshot"),
        "a snapshot named as an existing one: its identifier, an automated snapshot's rds:… identifier, or its "
        "ARN (a shared snapshot) → else InvalidParameterValue",
        f"{RDS_REF}, RestoreDBClusterFromSnapshot, SnapshotIdentifier: 'You can use either the name or the Amazon "
        "Resource Name (ARN) to specify a DB cluster snapshot.'; DescribeDBClusterSnapshots, "
        "DBClusterSnapshotIdentifier: 'If this identifier is for an automated snapshot, the SnapshotType "
        "parameter must also be specified.'",
        _rds_snapshot_reference,
    ),
    Rule(
        "rds",
        ("DescribeDBClusterSnapshots",),
        "DBClusterSnapshotIdentifier not with DBClusterIdentifier; an automated snapshot's identifier (rds:…) "
        "only with SnapshotType → InvalidParameterCombination",
        f"{RDS_REF}, DescribeDBClusterSnapshots, DBClusterSnapshotIdentifier: 'This parameter can't be used in "
        "conjunction with the DBClusterIdentifier parameter.' 'If this identifier is for an automated snapshot, "
        "the SnapshotType parameter must also be specified.'",
        _describe_snapshots_combination,
    ),
    Rule(
        "rds",
        ("CreateDBCluster", "CreateDBInstance", "CreateDBClusterSnapshot", "CopyDBClusterSnapshot",
         "RestoreDBClusterFromSnapshot", "RestoreDBClusterToPointInTime", "AddTagsToResource"),
        "tag keys 1-128 characters, values at most 256, neither prefixed with aws: or rds: → InvalidParameterValue",
        f"{RDS_REF}, Data Types, Tag, Key: 'The string value can be from 1 to 128 Unicode characters in length "
        "and can't be prefixed with aws: or rds:.'; Value: 'from 1 to 256 Unicode characters in length and can't "
        "be prefixed with aws: or rds:'",
        _rds_tags,
    ),
    Rule(
        "rds",
        ("ModifyDBCluster",),
        "EnableHttpEndpoint only on an Aurora Serverless v1 cluster (EngineMode serverless); on a provisioned or "
        "Serverless v2 cluster → InvalidParameterCombination (use the EnableHttpEndpoint action)",
        f"{RDS_REF}, ModifyDBCluster, EnableHttpEndpoint: 'This parameter applies only to Aurora Serverless v1 DB "
        "clusters. To enable or disable the HTTP endpoint for an Aurora Serverless v2 or provisioned DB cluster, "
        "use the EnableHttpEndpoint and DisableHttpEndpoint operations.'",
        _modify_http_endpoint,
    ),
    Rule(
        "rds",
        ("EnableHttpEndpoint", "DisableHttpEndpoint"),
        "only on a provisioned or Serverless v2 cluster; on Serverless v1 → InvalidResourceStateFault",
        f"{RDS_REF}, EnableHttpEndpoint: 'This operation applies only to Aurora Serverless v2 and provisioned DB "
        "clusters. To enable the HTTP endpoint for Aurora Serverless v1 DB clusters, use the EnableHttpEndpoint "
        "parameter of the ModifyDBCluster operation.'",
        _http_endpoint_action,
    ),
    Rule(
        "rds",
        ("RestoreDBClusterToPointInTime",),
        "exactly one of RestoreToTime and UseLatestRestorableTime → InvalidParameterCombination",
        f"{RDS_REF}, RestoreDBClusterToPointInTime, RestoreToTime: 'Must be specified if UseLatestRestorableTime "
        "parameter isn't provided. Can't be specified if the UseLatestRestorableTime parameter is enabled.'",
        _pitr_exactly_one_time,
    ),
    Rule(
        "rds",
        ("RestoreDBClusterToPointInTime",),
        "no RestoreToTime with RestoreType copy-on-write → InvalidParameterCombination",
        f"{RDS_REF}, RestoreDBClusterToPointInTime, RestoreToTime: 'Can't be specified if the RestoreType "
        "parameter is copy-on-write'",
        _pitr_time_not_cow,
    ),
    Rule(
        "rds",
        ("RestoreDBClusterToPointInTime",),
        "RestoreToTime inside the source's [EarliestRestorableTime, LatestRestorableTime] (its creation … now) "
        "→ InvalidRestoreFault",
        f"{RDS_REF}, RestoreDBClusterToPointInTime, RestoreToTime: 'Must be before the latest restorable time for "
        "the DB instance'; DBCluster, EarliestRestorableTime: 'The earliest time to which a database can be "
        "restored with point-in-time restore.'",
        _pitr_time_in_window,
    ),
    Rule(
        "rds",
        ("StopDBCluster",),
        "an Aurora cluster only → InvalidDBClusterStateFault (not available: moto's own check)",
        f"{RDS_REF}, StopDBCluster: 'This operation only applies to Aurora DB clusters.'; the Amazon Aurora User "
        "Guide, Stopping and starting an Amazon Aurora DB cluster: a stopped cluster is started again automatically "
        "after seven days.",
        _stop_aurora_only,
    ),
    Rule(
        "rds",
        ("DeleteDBCluster",),
        "FinalDBSnapshotIdentifier exactly when SkipFinalSnapshot is not true → InvalidParameterCombination",
        f"{RDS_REF}, DeleteDBCluster, SkipFinalSnapshot: 'If SkipFinalSnapshot is disabled, you must specify a "
        "value for the FinalDBSnapshotIdentifier parameter.'; FinalDBSnapshotIdentifier: 'If you specify this "
        "parameter and also skip the creation of a final DB cluster snapshot with the SkipFinalShapshot "
        "parameter, the request results in an error.'",
        _delete_cluster_final_snapshot,
    ),
    Rule(
        "logs",
        ("GetLogEvents", "FilterLogEvents"),
        "exactly one of logGroupName and logGroupIdentifier → InvalidParameterException (GetLogEvents limit "
        "1-10000 is the model's)",
        f"{LOGS_REF}, GetLogEvents / FilterLogEvents, logGroupName: 'You must include either logGroupIdentifier "
        "or logGroupName, but not both.'",
        _logs_group_one_of,
    ),
    Rule(
        "logs",
        ("FilterLogEvents",),
        "not both logStreamNamePrefix and logStreamNames → InvalidParameterException",
        f"{LOGS_REF}, FilterLogEvents, logStreamNamePrefix: 'If you specify a value for both logStreamNamePrefix "
        "and logStreamNames, the action returns an InvalidParameterException error.'",
        _filter_prefix_or_names,
    ),
    Rule(
        "apprunner",
        ("UpdateService",),
        "SourceConfiguration keeps the kind the service was created with (CodeRepository or ImageRepository) "
        "→ InvalidRequestException",
        "AWS App Runner API Reference, UpdateService, SourceConfiguration: 'you can't switch from code to image or "
        "the other way around. This means that you must provide the same structure member of SourceConfiguration "
        "that you originally included when you created the service.'",
        _update_same_source_kind,
    ),
    Rule(
        "s3",
        ("PutObject",),
        "If-None-Match only '*' → 501 NotImplemented",
        f"{S3_REF}, PutObject, If-None-Match: 'Expects the '*' (asterisk) character.'",
        _put_if_none_match_star,
    ),
)

# Behaviour the references describe that the emulator keeps (no rejection; a
# self-check test holds each):
#   CloudWatch Logs GetLogEvents, nextForwardToken: "If you have reached the end of the
#     stream, it returns the same token you passed in." (moto's tokens already do)
#   ECS RunTask failures[]: "Capacity is unavailable at this time. Please try again later or in a
#     different availability zone" (the capacity_failures knob)


def check(service: str, operation: str, params: dict[str, Any], ctx: Context) -> None:
    """Apply every catalogue rule of the operation; raises Rejection on the first broken one."""
    for rule in CATALOGUE:
        if rule.service == service and operation in rule.operations:
            rule.check(params, ctx)


def table() -> str:
    """The catalogue as a Markdown table."""
    rows = ["| service | operation | rule | source |", "| --- | --- | --- | --- |"]
    for r in CATALOGUE:
        cells = [r.service, ", ".join(r.operations), r.rule, r.source]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def fingerprint(params: dict[str, Any]) -> str:
    """A RunTask request's parameters without its clientToken, for the conflict rule."""
    return json.dumps({k: v for k, v in params.items() if k != "clientToken"}, sort_keys=True, default=str)


if __name__ == "__main__":
    print(table())
