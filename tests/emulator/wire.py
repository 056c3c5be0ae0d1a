"""Small helpers shared by the protocol handlers."""

from __future__ import annotations

from typing import Any


def region_of(environ: dict[str, Any], default: str = "us-east-1") -> str:
    """The region from a SigV4 Authorization header's credential scope."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        return auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")[2]
    except IndexError:
        return default
