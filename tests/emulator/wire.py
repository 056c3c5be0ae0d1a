"""Small helpers shared by the protocol handlers."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs


class ServiceError(Exception):
    """An error answered in the protocol's shape: an AWS error code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def json_object(body: bytes, error: type[ServiceError], code: str) -> dict[str, Any]:
    """A JSON protocol's request body, which must be an object; else `error(code, ...)`."""
    try:
        params = json.loads(body or b"{}")
    except ValueError as e:
        raise error(code, f"body is not JSON: {e}") from e
    if not isinstance(params, dict):
        raise error(code, "body must be a JSON object")
    return params


def epoch() -> float:
    """Now, as AWS JSON protocols send timestamps: epoch seconds, to the millisecond."""
    return round(time.time(), 3)


def region_of(environ: dict[str, Any], default: str = "us-east-1") -> str:
    """The region from a SigV4 Authorization header's credential scope."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        return auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")[2]
    except IndexError:
        return default


def signing_service(environ: dict[str, Any]) -> str:
    """The SigV4 credential scope's service: from the Authorization header or a presigned URL."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        return auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")[3]
    except IndexError:
        pass
    credential = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential")
    if credential:
        parts = credential[0].split("/")
        if len(parts) >= 4:
            return parts[3]
    return ""
