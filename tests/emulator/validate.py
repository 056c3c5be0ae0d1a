"""Model validation: each request against AWS's published service model.

The models are botocore's JSON service models, read at run time from the
botocore pinned in the emulator's venv (``botocore.session``); nothing of them
is copied here. A request is turned into the operation's input (Query protocol
form fields, an awsJson body, S3's headers and query string) and checked
member by member:

* required members present (and, in JSON, not null);
* no member the model does not have (an unknown form field or JSON key);
* types: string, integer/long (and their range ``min``/``max``), boolean,
  double/float, timestamp, blob, list, map, structure;
* string ``enum`` values, lengths (``min``/``max``), ``pattern`` (Java
  regular expressions; ``\\p{L}``, ``\\p{N}``, ``\\p{Z}`` are widened to
  Python's ``\\w`` and ``\\s``, so such a pattern accepts a little more than
  AWS);
* list and map sizes (``min``/``max``).

A violation is answered the way the service answers a malformed request
(see ``ERROR_CODES``): the Query protocol's ``<ErrorResponse>`` XML, the JSON
protocols' ``{"__type", "message"}`` body, S3's ``<Error>``; all with status
400 and a message in the form AWS's model validation uses ("1 validation error
detected: Value '…' at '…' failed to satisfy constraint: …").
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import botocore.session

# Services validated: the SigV4 signing name -> botocore's service name.
SERVICES = {
    "rds": "rds",
    "cloudformation": "cloudformation",
    "ecs": "ecs",
    "logs": "logs",
    "apprunner": "apprunner",
    "s3": "s3",
}

# The error code each service answers for a request that breaks its model, by
# kind of violation: "missing" (a required member), "invalid" (a value outside
# its enum, length, range or pattern; an unknown member), "type" (a value of
# the wrong type).
#
# * RDS (Query): the Amazon RDS API Reference, "Common Errors": MissingParameter
#   "A required parameter for the specified action is not supplied";
#   InvalidParameterValue "An invalid or out-of-range value was supplied for the
#   input parameter".
# * CloudFormation (Query): ValidationError for every malformed request
#   (e.g. "1 validation error detected: Value '…' at 'stackName' failed to
#   satisfy constraint: …").
# * ECS (awsJson 1.1): InvalidParameterException "The specified parameter isn't
#   valid" (ECS API Reference, errors of every action); a body member of the
#   wrong JSON type is a SerializationException, as in every awsJson service.
# * CloudWatch Logs (awsJson 1.1): InvalidParameterException "A parameter is
#   specified incorrectly" (e.g. GetLogEvents with limit above 10000).
# * App Runner (awsJson 1.0): InvalidRequestException "One or more input
#   parameters aren't valid".
# * S3 (REST-XML): InvalidArgument "Invalid Argument" (400), the S3 API
#   Reference's error code for a header or query value S3 cannot accept.
ERROR_CODES: dict[str, dict[str, str]] = {
    "rds": {"missing": "MissingParameter", "invalid": "InvalidParameterValue", "type": "InvalidParameterValue"},
    "cloudformation": {"missing": "ValidationError", "invalid": "ValidationError", "type": "ValidationError"},
    "ecs": {"missing": "InvalidParameterException", "invalid": "InvalidParameterException", "type": "SerializationException"},
    "logs": {"missing": "InvalidParameterException", "invalid": "InvalidParameterException", "type": "SerializationException"},
    "apprunner": {"missing": "InvalidRequestException", "invalid": "InvalidRequestException", "type": "SerializationException"},
    "s3": {"missing": "InvalidArgument", "invalid": "InvalidArgument", "type": "InvalidArgument"},
}

# Form fields of the Query protocol that are not operation members.
_QUERY_ENVELOPE = ("Action", "Version")


@dataclass
class Violation:
    kind: str  # "missing" | "invalid" | "type"
    path: str
    message: str


@dataclass
class Request:
    """An API request as the checks see it: service, operation, input (JSON-like)."""

    service: str  # botocore service name
    protocol: str  # "query" | "json" | "rest-xml"
    operation: str
    params: dict[str, Any]


class Rejection(Exception):
    """A request the emulator refuses, answered in the service's protocol."""

    def __init__(self, code: str, message: str, status: int = 400, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra or {}


@lru_cache(maxsize=None)
def service_model(name: str) -> Any:
    return botocore.session.get_session().get_service_model(name)


@lru_cache(maxsize=None)
def _json_targets() -> dict[str, str]:
    """X-Amz-Target prefix -> service, for the awsJson services."""
    out = {}
    for name in SERVICES.values():
        prefix = service_model(name).metadata.get("targetPrefix")
        if prefix:
            out[prefix] = name
    return out


# -- patterns ---------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _pattern(java: str) -> re.Pattern[str] | None:
    """A model's (Java) pattern as a Python one, or None when it cannot be read."""
    text = java.replace(r"\p{L}", r"\w").replace(r"\p{N}", r"\w").replace(r"\p{Z}", r"\s")
    text = text.replace(r"\w-_", r"\w\-_")
    try:
        return re.compile(text, re.DOTALL)
    except re.error:
        return None


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


# -- the model walk ---------------------------------------------------------------------


def check_value(shape: Any, value: Any, path: str, out: list[Violation]) -> None:
    """Check ``value`` against ``shape``; violations are appended to ``out``."""
    kind = shape.type_name
    meta = shape.metadata
    lo, hi = meta.get("min"), meta.get("max")
    where = f"at '{path}' failed to satisfy constraint"
    if kind == "structure":
        if not isinstance(value, dict):
            out.append(Violation("type", path, f"Value {_show(value)} at '{path}': expected an object"))
            return
        for key in value:
            if key not in shape.members:
                out.append(Violation("invalid", f"{path}.{key}" if path else key, f"Unknown member '{key}'" + (f" in '{path}'" if path else "")))
        for req in shape.required_members:
            if value.get(req) is None:
                p = f"{path}.{req}" if path else req
                out.append(Violation("missing", p, f"Value null at '{p}' failed to satisfy constraint: Member must not be null"))
        for key, v in value.items():
            if key in shape.members and v is not None:
                check_value(shape.members[key], v, f"{path}.{key}" if path else key, out)
        if getattr(shape, "is_union", False) or meta.get("union"):
            set_members = [k for k, v in value.items() if v is not None]
            if len(set_members) != 1:
                out.append(Violation("invalid", path, f"'{path}' must have exactly one member set, not {len(set_members)}"))
        return
    if kind == "list":
        if not isinstance(value, list):
            out.append(Violation("type", path, f"Value {_show(value)} at '{path}': expected a list"))
            return
        if lo is not None and len(value) < lo:
            out.append(Violation("invalid", path, f"Value {_show(value)} {where}: Member must have length greater than or equal to {lo}"))
        if hi is not None and len(value) > hi:
            out.append(Violation("invalid", path, f"Value '{_show(value)}' {where}: Member must have length less than or equal to {hi}"))
        for i, item in enumerate(value, 1):
            if item is None:
                continue
            check_value(shape.member, item, f"{path}.{i}.member", out)
        return
    if kind == "map":
        if not isinstance(value, dict):
            out.append(Violation("type", path, f"Value {_show(value)} at '{path}': expected an object"))
            return
        if lo is not None and len(value) < lo:
            out.append(Violation("invalid", path, f"Map at '{path}' {where}: Map must have at least {lo} entries"))
        if hi is not None and len(value) > hi:
            out.append(Violation("invalid", path, f"Map at '{path}' {where}: Map must have at most {hi} entries"))
        for k, v in value.items():
            check_value(shape.key, k, f"{path}.key", out)
            if v is not None:
                check_value(shape.value, v, f"{path}.{k}", out)
        return
    if kind == "string":
        if not isinstance(value, str):
            out.append(Violation("type", path, f"Value {_show(value)} at '{path}': expected a string"))
            return
        enum = meta.get("enum")
        if enum and value not in enum:
            out.append(Violation("invalid", path, f"Value '{_show(value)}' {where}: Member must satisfy enum value set: [{', '.join(enum)}]"))
        if lo is not None and len(value) < lo:
            out.append(Violation("invalid", path, f"Value '{_show(value)}' {where}: Member must have length greater than or equal to {lo}"))
        if hi is not None and len(value) > hi:
            out.append(Violation("invalid", path, f"Value '{_show(value)}' {where}: Member must have length less than or equal to {hi}"))
        pattern = meta.get("pattern")
        compiled = _pattern(pattern) if pattern else None
        if compiled is not None and compiled.fullmatch(value) is None:
            out.append(Violation("invalid", path, f"Value '{_show(value)}' {where}: Member must satisfy regular expression pattern: {pattern}"))
        return
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                out.append(Violation("type", path, f"Value {_show(value)} at '{path}': expected a whole number"))
                return
        if lo is not None and value < lo:
            out.append(Violation("invalid", path, f"Value '{value}' {where}: Member must have value greater than or equal to {lo}"))
        if hi is not None and value > hi:
            out.append(Violation("invalid", path, f"Value '{value}' {where}: Member must have value less than or equal to {hi}"))
        return
    if kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            out.append(Violation("type", path, f"Value {_show(value)} at '{path}': expected a number"))
            return
        if lo is not None and value < lo:
            out.append(Violation("invalid", path, f"Value '{value}' {where}: Member must have value greater than or equal to {lo}"))
        if hi is not None and value > hi:
            out.append(Violation("invalid", path, f"Value '{value}' {where}: Member must have value less than or equal to {hi}"))
        return
    if kind == "boolean":
        if not isinstance(value, bool):
            out.append(Violation("type", path, f"Value {_show(value)} at '{path}': expected true or false"))
        return
    if kind == "timestamp":
        if isinstance(value, datetime.datetime):
            return
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            out.append(Violation("type", path, f"Value {_show(value)} at '{path}': expected a timestamp"))
        elif isinstance(value, str) and parse_timestamp(value) is None:
            out.append(Violation("type", path, f"Value '{_show(value)}' at '{path}': not a timestamp"))
        return
    if kind == "blob":
        if isinstance(value, (bytes, bytearray)):
            size = len(value)
        elif isinstance(value, str):
            try:
                size = len(base64.b64decode(value, validate=True))
            except ValueError:
                out.append(Violation("type", path, f"Value at '{path}': not base64"))
                return
        else:
            out.append(Violation("type", path, f"Value {_show(value)} at '{path}': expected base64 text"))
            return
        if lo is not None and size < lo:
            out.append(Violation("invalid", path, f"Value at '{path}' {where}: Member must have length greater than or equal to {lo}"))
        if hi is not None and size > hi:
            out.append(Violation("invalid", path, f"Value at '{path}' {where}: Member must have length less than or equal to {hi}"))


def parse_timestamp(text: str) -> datetime.datetime | None:
    """ISO 8601 (the Query protocol's and JSON's text form), epoch seconds, or an HTTP date."""
    t = text.strip()
    try:
        return datetime.datetime.fromtimestamp(float(t), tz=datetime.timezone.utc)
    except ValueError:
        pass
    try:
        value = datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return parsedate_to_datetime(t)
    except (TypeError, ValueError):
        return None


# -- the Query protocol: form fields -> input ---------------------------------------------

_MISSING = object()


def _query_scalar(shape: Any, raw: str, path: str, out: list[Violation]) -> Any:
    kind = shape.type_name
    if kind in ("integer", "long"):
        try:
            return int(raw)
        except ValueError:
            out.append(Violation("type", path, f"Invalid value '{_show(raw)}' for parameter {path}: expected a whole number"))
            return _MISSING
    if kind in ("double", "float"):
        try:
            return float(raw)
        except ValueError:
            out.append(Violation("type", path, f"Invalid value '{_show(raw)}' for parameter {path}: expected a number"))
            return _MISSING
    if kind == "boolean":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        out.append(Violation("type", path, f"Invalid value '{_show(raw)}' for parameter {path}: expected true or false"))
        return _MISSING
    if kind == "timestamp":
        parsed = parse_timestamp(raw)
        if parsed is None:
            out.append(Violation("type", path, f"Invalid value '{_show(raw)}' for parameter {path}: expected an ISO 8601 time"))
            return _MISSING
        return parsed
    return raw


def _query_read(shape: Any, prefix: str, flat: dict[str, str], used: set[str], out: list[Violation]) -> Any:
    kind = shape.type_name
    if kind == "structure":
        dotted = prefix + "." if prefix else ""
        if prefix and not any(k.startswith(dotted) for k in flat) and prefix not in flat:
            return _MISSING
        if prefix in flat:
            used.add(prefix)
        result = {}
        for name, member in shape.members.items():
            key = member.serialization.get("name", name)
            v = _query_read(member, dotted + key, flat, used, out)
            if v is not _MISSING:
                result[name] = v
        return result
    if kind == "list":
        if shape.serialization.get("flattened"):
            base = prefix
            member_name = shape.member.serialization.get("name")
            if member_name:
                base = ".".join(prefix.split(".")[:-1] + [member_name])
        else:
            base = f"{prefix}.{shape.member.serialization.get('name', 'member')}"
        if prefix in flat and flat[prefix] == "":
            used.add(prefix)
            return []
        indexes = set()
        for k in flat:
            if k.startswith(base + "."):
                head = k[len(base) + 1 :].split(".", 1)[0]
                if head.isdigit():
                    indexes.add(int(head))
        if not indexes:
            return _MISSING
        items = []
        for i in sorted(indexes):
            v = _query_read(shape.member, f"{base}.{i}", flat, used, out)
            if v is not _MISSING:
                items.append(v)
        return items
    if kind == "map":
        base = prefix if shape.serialization.get("flattened") else f"{prefix}.entry"
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        indexes = set()
        for k in flat:
            if k.startswith(base + "."):
                head = k[len(base) + 1 :].split(".", 1)[0]
                if head.isdigit():
                    indexes.add(int(head))
        if not indexes:
            return _MISSING
        result = {}
        for i in sorted(indexes):
            k = _query_read(shape.key, f"{base}.{i}.{key_name}", flat, used, out)
            v = _query_read(shape.value, f"{base}.{i}.{value_name}", flat, used, out)
            if k is not _MISSING:
                result[k] = None if v is _MISSING else v
        return result
    if prefix not in flat:
        return _MISSING
    used.add(prefix)
    return _query_scalar(shape, flat[prefix], prefix, out)


# -- requests -> (service, operation, input) ------------------------------------------------


def _query_fields(environ: dict[str, Any], body: bytes) -> dict[str, str]:
    fields = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        fields.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return {k: v for k, v in fields.items() if not k.startswith("X-Amz-")}


def _header(environ: dict[str, Any], name: str) -> str | None:
    key = name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return environ.get(key) or None
    return environ.get("HTTP_" + key)


def _s3_input(environ: dict[str, Any], op: Any, out: list[Violation]) -> dict[str, Any]:
    """S3: the headers and query string members of the operation (the URI's
    bucket and key are the routing's; the body is not read)."""
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    params: dict[str, Any] = {}
    shape = op.input_shape
    if shape is None:
        return params
    for name, member in shape.members.items():
        where = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if where == "header":
            raw = _header(environ, wire)
        elif where == "querystring":
            raw = query.get(wire)
        elif where == "uri":
            params[name] = "uri"  # present by routing
            continue
        else:
            continue
        if raw is None or (member.type_name not in ("string",) and raw == ""):
            continue
        if member.type_name in ("list", "map", "structure"):
            continue
        value = _query_scalar(member, raw, wire, out)
        if value is not _MISSING:
            params[name] = value
    return params


def parse(environ: dict[str, Any], body: bytes, protocol_errors: list[Violation]) -> Request | None:
    """The request as (service, operation, input), or None for a request the
    emulator does not validate (another service, a debug endpoint)."""
    from wire import signing_service

    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        prefix, _, action = target.rpartition(".")
        service = _json_targets().get(prefix)
        if service is None:
            return None
        model = service_model(service)
        if action not in model.operation_names:
            return None
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            protocol_errors.append(Violation("type", "", "Body is not valid JSON"))
            params = {}
        if not isinstance(params, dict):
            protocol_errors.append(Violation("type", "", "Body must be a JSON object"))
            params = {}
        return Request(service, "json", action, params)
    signing = signing_service(environ)
    service = SERVICES.get(signing)
    if service is None:
        return None
    model = service_model(service)
    if model.protocol == "query":
        fields = _query_fields(environ, body)
        action = fields.get("Action", "")
        if action not in model.operation_names:
            return None
        op = model.operation_model(action)
        used: set[str] = set()
        params: dict[str, Any] = {}
        if op.input_shape is not None:
            read = _query_read(op.input_shape, "", fields, used, protocol_errors)
            params = read if isinstance(read, dict) else {}
        for key in fields:
            if key not in used and key not in _QUERY_ENVELOPE:
                protocol_errors.append(Violation("invalid", key, f"Unknown parameter {key} for {action}"))
        return Request(service, "query", action, params)
    if model.protocol == "rest-xml" and service == "s3":
        import s3_cond

        action = s3_cond.operation(environ)
        if action not in model.operation_names:
            return None
        params = _s3_input(environ, model.operation_model(action), protocol_errors)
        return Request(service, "rest-xml", action, params)
    return None


def violations(request: Request, protocol_errors: list[Violation]) -> list[Violation]:
    """Every way the request breaks the operation's input shape."""
    out = list(protocol_errors)
    op = service_model(request.service).operation_model(request.operation)
    shape = op.input_shape
    if shape is None:
        return out
    if request.protocol == "rest-xml":
        # Only header and query members were read; the body's are not checked here.
        for req in shape.required_members:
            member = shape.members[req]
            if member.serialization.get("location") in ("header", "querystring") and req not in request.params:
                out.append(Violation("missing", req, f"Value null at '{req}' failed to satisfy constraint: Member must not be null"))
        for name, value in request.params.items():
            if value != "uri":
                check_value(shape.members[name], value, member_wire_name(shape, name), out)
        return out
    check_value(shape, request.params, "", out)
    return out


def member_wire_name(shape: Any, name: str) -> str:
    return shape.members[name].serialization.get("name", name)


def rejection(request: Request, found: list[Violation]) -> Rejection:
    """The service's answer to a request that breaks its model."""
    codes = ERROR_CODES[request.service]
    first = found[0]
    if request.service == "rds" and first.kind == "missing":
        return Rejection(codes["missing"], f"The parameter {first.path} must be provided and must not be blank.")
    code = codes[first.kind]
    if len(found) == 1:
        return Rejection(code, f"1 validation error detected: {first.message}")
    return Rejection(code, f"{len(found)} validation errors detected: " + "; ".join(v.message for v in found))
