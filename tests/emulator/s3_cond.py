"""S3 in front of moto: conditional writes as S3 documents them, and faults.

moto 5.2.5 already checks ``If-None-Match: *`` on PutObject (412 when the key
exists, a delete marker counting as absent) and ``If-Match: <etag>`` on
PutObject and DeleteObject (412 on another ETag, 404 NoSuchKey when the key is
missing). What it lacks, added here:

* DeleteObject ``If-Match: *`` deletes any existing object (moto compares the
  asterisk with the ETag and answers 412); a missing key stays 404 NoSuchKey.
* ``409 ConditionalRequestConflict`` on demand: the setting ``s3_conflicts``
  (a count) makes that many of the next conditional writes (PutObject,
  DeleteObject or CompleteMultipartUpload with ``If-Match`` or
  ``If-None-Match``) answer 409 without writing anything.
* An unreachable S3: the setting ``s3_fault`` = ``"503"`` answers every S3
  request with ``503 ServiceUnavailable``; ``"reset"`` drops the connection
  without an answer (TCP reset); ``"none"`` serves normally.

Atomicity: every request forwarded to moto holds locks.MOTO_LOCK for the
whole of moto's check-and-write, so two simultaneous conditional writes of
one key are decided one after the other (exactly one ``If-None-Match: *``
wins). The ``If-Match: *`` translation below holds the same (reentrant) lock
across its look-up and the write.

S3 requests are told apart by their SigV4 signing service ``s3`` (header or
presigned query); they carry no ``X-Amz-Target``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from locks import MOTO_LOCK
from settings import Settings
from wire import signing_service

Response = tuple[int, list[tuple[str, str]], bytes]
CallMoto = Callable[[dict[str, Any], bytes], Response]

FAULT_MODES = ("none", "503", "reset")


class DropConnection(Exception):
    """Raised to end the request without an answer (the server resets the connection)."""


def is_s3(environ: dict[str, Any]) -> bool:
    return signing_service(environ) == "s3"


def _bucket_and_key(environ: dict[str, Any]) -> tuple[str, str]:
    """Bucket and key of a path-style or virtual-host-style request."""
    path = environ.get("PATH_INFO", "").lstrip("/")
    host = environ.get("HTTP_HOST", "").split(":", 1)[0]
    first = host.split(".", 1)[0]
    virtual = "." in host and not host.replace(".", "").isdigit() and first not in ("s3", "localhost")
    if virtual:
        return first, path
    bucket, _, key = path.partition("/")
    return bucket, key


def operation(environ: dict[str, Any]) -> str:
    """The S3 operation's name as the API reference spells it (for the call log)."""
    method = environ.get("REQUEST_METHOD", "GET")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    bucket, key = _bucket_and_key(environ)
    if not bucket:
        return "ListBuckets" if method == "GET" else f"{method} /"
    if key:
        if method == "PUT":
            if "partNumber" in query:
                return "UploadPart"
            return "CopyObject" if environ.get("HTTP_X_AMZ_COPY_SOURCE") else "PutObject"
        if method == "POST":
            return "CompleteMultipartUpload" if "uploadId" in query else "CreateMultipartUpload"
        if method == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
        return {"GET": "GetObject", "HEAD": "HeadObject"}.get(method, f"{method} object")
    if method == "GET":
        if "versioning" in query:
            return "GetBucketVersioning"
        if "versions" in query:
            return "ListObjectVersions"
        return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "PUT":
        return "PutBucketVersioning" if "versioning" in query else "CreateBucket"
    return {"HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, f"{method} bucket")


def error(environ: dict[str, Any], status: int, code: str, message: str) -> Response:
    """An S3 error answer (REST-XML); a HEAD answer has no body, as S3's."""
    headers = [("Content-Type", "application/xml"), ("x-amz-request-id", "emulator")]
    if environ.get("REQUEST_METHOD") == "HEAD":
        return status, headers, b""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        "<RequestId>emulator</RequestId></Error>"
    )
    return status, headers, xml.encode()


def _is_conditional_write(environ: dict[str, Any]) -> bool:
    if environ.get("REQUEST_METHOD") not in ("PUT", "DELETE", "POST"):
        return False
    return bool(environ.get("HTTP_IF_MATCH") or environ.get("HTTP_IF_NONE_MATCH"))


class S3Front:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def handle(self, environ: dict[str, Any], body: bytes, call_moto: CallMoto) -> Response:
        fault = self.settings.get("s3_fault")
        if fault == "503":
            return error(environ, 503, "ServiceUnavailable", "Service is unable to handle request (emulator s3_fault).")
        if fault == "reset":
            raise DropConnection
        if _is_conditional_write(environ) and self.settings.take_count("s3_conflicts"):
            return error(
                environ,
                409,
                "ConditionalRequestConflict",
                "A conflicting operation occurred during the conditional request; retry it (emulator s3_conflicts).",
            )
        if environ.get("REQUEST_METHOD") == "DELETE" and environ.get("HTTP_IF_MATCH", "").strip() == "*":
            return self._delete_if_exists(environ, body, call_moto)
        return call_moto(environ, body)

    def _delete_if_exists(self, environ: dict[str, Any], body: bytes, call_moto: CallMoto) -> Response:
        """DeleteObject ``If-Match: *``: the current version's ETag stands in for the asterisk,
        looked up and used under one hold of the lock."""
        head = dict(environ)
        head["REQUEST_METHOD"] = "HEAD"
        head.pop("HTTP_IF_MATCH", None)
        head["QUERY_STRING"] = ""
        with MOTO_LOCK:
            status, headers, _ = call_moto(head, b"")
            etag = next((v for k, v in headers if k.lower() == "etag"), None)
            if status != 200 or not etag:
                return error(environ, 404, "NoSuchKey", "The specified key does not exist.")
            delete = dict(environ)
            delete["HTTP_IF_MATCH"] = etag
            return call_moto(delete, body)
