"""The S3 store's lean request engine: small data-plane requests on ``awscrt`` (issue 10).

Why: botocore costs about 4.5 M instructions per small request and 0.35 s to import and build a
Session; awscrt's ``S3Client`` (HTTP, connection pool, SigV4 and retries in C, already a
dependency) costs 0.54 M and 66 ms (benchmarks/spike/RESULTS.md). So the requests a store makes
once per small object (PutObject, a whole small GetObject, HeadObject, HeadBucket, a one-key
listing) go through this engine, and a command that only moves small objects never imports
boto3. Large ranged GETs and UploadPart stay on botocore, whose ``readinto`` path costs the
least CPU per GiB, and so do control calls (multipart, copies, deletes, paginated listings).

What the store promises is kept: the caller's crc32c goes as ``x-amz-checksum-crc32c`` (signed,
checked by the server: BadDigest), the engine computes no checksum of its own and signs no
payload (``UNSIGNED-PAYLOAD``, as botocore is configured); retries of single requests are the
engine's (``max_attempts`` - 1, like botocore's), and the final error is classified once, by the
store, from the HTTP status and the S3 error ``Code``.

The engine is built only from what is known without boto3: an endpoint URL (store option
``endpoint_url`` or ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``), path-style addressing, a
region (option, ``AWS_DEFAULT_REGION``, the profile's ``region`` in ``~/.aws/config``, else
``us-east-1``), and credentials from awscrt's own default chain (environment, ``~/.aws``
profiles, web identity, ECS, IMDS), a named profile, or ``credentials_env``. AWS itself
(virtual-hosted buckets) and ``engine = "botocore"`` keep every request on botocore.
"""

from __future__ import annotations

import configparser
import contextlib
import io
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from mover.provider import ObjectInfo

#: Bodies up to this size go through the engine; larger ones stay on botocore's readinto path.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Event-loop threads of the engine (C threads; they run without the GIL).
EVENT_LOOP_THREADS = 2
#: Connections the engine may keep open to the endpoint.
MAX_CONNECTIONS = 64

_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")
_KEY_COUNT = re.compile(rb"<KeyCount>(\d+)</KeyCount>")
_CONTENTS = re.compile(rb"<Contents>")


class EngineError(Exception):
    """A request the engine could not complete; the store classifies it.

    ``status`` 0 means no HTTP answer (transport); ``code`` is the S3 error code or the CRT
    error name; ``connect`` tells a refused or unreachable endpoint.
    """

    def __init__(self, status: int, code: str, message: str, connect: bool = False) -> None:
        super().__init__(f"{code or status}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.connect = connect


@dataclass(frozen=True)
class Answer:
    """One response: status, lower-case headers, body (empty for HEAD and PUT, and when it
    went into the caller's buffer), and the body's length."""

    status: int
    headers: dict[str, str]
    body: bytes
    length: int


@dataclass(frozen=True)
class Settings:
    """What the engine is built from; None from :func:`settings` when it cannot be."""

    endpoint_url: str
    region: str
    profile: str | None
    static: tuple[str, str, str | None] | None = field(repr=False)
    max_attempts: int
    connect_timeout_s: float
    request_timeout_s: float
    #: the AWS_* environment the default chain reads (credentials): part of the engine's
    #: identity, so a changed environment gets a new engine, as boto3 Sessions are keyed
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)


def settings(
    options: dict[str, Any], max_attempts: int, connect_s: float, read_s: float
) -> Settings | None:
    """The engine's settings for a store's ``options``, or None when it must stay on botocore
    (no endpoint URL known without boto3, virtual addressing asked, ``engine = "botocore"``,
    ``MOVER_S3_ENGINE=botocore``, or credentials_env naming unset variables: botocore then
    gives the precise error)."""
    engine = str(options.get("engine") or os.environ.get("MOVER_S3_ENGINE") or "awscrt").lower()
    if engine != "awscrt":
        return None
    if str(options.get("addressing_style") or "path") != "path":
        return None
    profile = options.get("profile") or os.environ.get("AWS_PROFILE") or None
    endpoint = (
        options.get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    config = _profile_config(profile)
    if not endpoint or urlsplit(str(endpoint)).scheme not in ("http", "https"):
        return None
    if options.get("request_checksum_calculation") or options.get("payload_signing_enabled"):
        return None  # the store asked for botocore's own body handling
    static = None
    prefix = options.get("credentials_env")
    if prefix:
        key, secret = (
            os.environ.get(f"{prefix}_ACCESS_KEY_ID"),
            os.environ.get(f"{prefix}_SECRET_ACCESS_KEY"),
        )
        if not key or not secret:
            return None
        static = (key, secret, os.environ.get(f"{prefix}_SESSION_TOKEN") or None)
    region = (
        options.get("region")
        or os.environ.get("AWS_DEFAULT_REGION")
        or config.get("region")
        or "us-east-1"
    )
    return Settings(
        endpoint_url=str(endpoint).rstrip("/"),
        region=str(region),
        profile=str(profile) if profile and not static else None,
        static=static,
        max_attempts=max(1, max_attempts),
        connect_timeout_s=connect_s,
        request_timeout_s=read_s,
        env=tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))),
    )


def _profile_config(profile: str | None) -> dict[str, str]:
    """The profile's section of the AWS config file (only ``region`` is used); empty when
    there is none. A few lines of INI: far cheaper than building a boto3 Session."""
    path = os.environ.get("AWS_CONFIG_FILE") or os.path.expanduser("~/.aws/config")
    if not os.path.isfile(path):
        return {}
    parser = configparser.RawConfigParser()
    try:
        parser.read(path)
    except configparser.Error:
        return {}
    section = "default" if not profile or profile == "default" else f"profile {profile}"
    return dict(parser[section]) if parser.has_section(section) else {}


class Engine:
    """One awscrt ``S3Client`` for one endpoint, shared by every thread of the store."""

    def __init__(self, s: Settings) -> None:
        from awscrt import auth, io, s3

        self.settings = s
        parts = urlsplit(s.endpoint_url)
        self.host = parts.netloc
        self.base = parts.path.rstrip("/")
        self._s3 = s3
        loop = io.EventLoopGroup(EVENT_LOOP_THREADS)
        bootstrap = io.ClientBootstrap(loop, io.DefaultHostResolver(loop))
        if s.static is not None:
            creds = auth.AwsCredentialsProvider.new_static(*s.static)
        elif s.profile:
            creds = auth.AwsCredentialsProvider.new_profile(bootstrap, profile_name=s.profile)
        else:
            creds = auth.AwsCredentialsProvider.new_default_chain(bootstrap)
        signing = s3.create_default_s3_signing_config(region=s.region, credential_provider=creds)
        # No payload hash: the crc32c header (signed) is what proves the body, as with botocore.
        signing = signing.replace(signed_body_value=auth.AwsSignedBodyValue.UNSIGNED_PAYLOAD)
        tls = (
            s3.S3RequestTlsMode.ENABLED if parts.scheme == "https" else s3.S3RequestTlsMode.DISABLED
        )
        retries = s3.S3RetryConfig(max_retries=s.max_attempts - 1)
        if s.max_attempts <= 1:
            retries = s3.S3RetryConfig(retry_mode=s3.S3RetryMode.NONE)
        self.client = s3.S3Client(
            bootstrap=bootstrap,
            region=s.region,
            signing_config=signing,
            tls_mode=tls,
            max_active_connections_override=MAX_CONNECTIONS,
            retry_config=retries,
            connect_timeout_ms=int(s.connect_timeout_s * 1000),
        )

    def request(
        self,
        operation: str,
        method: str,
        bucket: str,
        key: str | None = None,
        *,
        query: str = "",
        headers: list[tuple[str, str]] | None = None,
        body: memoryview | None = None,
        into: memoryview | None = None,
    ) -> Answer:
        """Send one request and wait for it. ``body`` is sent from the caller's buffer;
        ``into`` receives the response body in place (its length is the most it takes: a
        longer body fails). Raises :class:`EngineError`."""
        from awscrt import http
        from awscrt.exceptions import AwsCrtError

        path = f"{self.base}/{quote(bucket, safe='')}"
        if key is not None:
            path += "/" + quote(key, safe="/~")
        if query:
            path += "?" + query
        sent = [("Host", self.host), *(headers or [])]
        stream = None
        if body is not None:
            sent.append(("Content-Length", str(len(body))))
            stream = BufferReader(body)
        elif method in ("PUT", "POST"):
            sent.append(("Content-Length", "0"))
        answer: dict[str, Any] = {"status": 0, "headers": {}}
        received = bytearray() if into is None else None
        got = [0]
        overflow = [False]

        def on_headers(status_code: int, headers: Any, **_kw: Any) -> None:
            answer["status"] = status_code
            answer["headers"] = {k.lower(): v for k, v in headers}

        def on_body(chunk: Any, offset: int = 0, **_kw: Any) -> None:
            n = len(chunk)
            if received is not None:
                received.extend(chunk)
            elif got[0] + n > len(into):  # type: ignore[arg-type]
                overflow[0] = True
            else:
                into[got[0] : got[0] + n] = chunk  # type: ignore[index]
            got[0] += n

        request = http.HttpRequest(method, path, http.HttpHeaders(sent), body_stream=stream)
        try:
            made = start(self.client, operation, request, on_headers, on_body)
        except AwsCrtError as exc:
            raise EngineError(0, exc.name, exc.message) from exc
        future = made.finished_future
        try:
            future.result(timeout=self.settings.request_timeout_s)
        except TimeoutError:
            made.cancel()
            raise EngineError(
                0, "RequestTimeout", f"no answer within {self.settings.request_timeout_s:g} s"
            ) from None
        except self._s3.S3ResponseError as exc:
            raise _response_error(exc) from exc
        except AwsCrtError as exc:
            raise EngineError(0, exc.name, exc.message, connect=_is_connect(exc.name)) from exc
        if overflow[0]:
            most = len(into) if into is not None else 0
            raise EngineError(0, "BodyTooLong", f"the answer held {got[0]} bytes, {most} asked")
        body_bytes = bytes(received) if received is not None else b""
        return Answer(int(answer["status"]), answer["headers"], body_bytes, got[0])


def start(
    client: Any,
    operation: str,
    request: Any,
    on_headers: Callable[..., None],
    on_body: Callable[..., None] | None,
) -> Any:
    """Start ``request`` on ``client`` (an awscrt ``S3Client``) as one ``DEFAULT`` meta request
    named for its S3 ``operation``: the CRT signs, sends and retries it as it is, and neither
    splits it into parts nor adds a checksum of its own. Returns the ``S3Request``."""
    from awscrt import s3

    return client.make_request(
        type=s3.S3RequestType.DEFAULT,
        operation_name=operation,
        request=request,
        on_headers=on_headers,
        on_body=on_body,
    )


def key_count(body: bytes) -> int:
    """Keys in a ListObjectsV2 answer (``KeyCount``, else its ``Contents`` elements)."""
    m = _KEY_COUNT.search(body)
    return int(m.group(1)) if m else len(_CONTENTS.findall(body))


@dataclass(frozen=True)
class Listing:
    """One page of ListObjectsV2: its objects and the token of the next page (None: last)."""

    objects: list[ObjectInfo]
    next_token: str | None


def parse_listing(body: bytes) -> Listing:
    """A ListObjectsV2 answer's objects (key, size, ETag, mtime) and continuation token."""
    from datetime import datetime
    from xml.etree import ElementTree

    root = ElementTree.fromstring(body)
    ns = root.tag.partition("}")[0] + "}" if root.tag.startswith("{") else ""
    objects = []
    for item in root.iter(f"{ns}Contents"):
        modified = item.findtext(f"{ns}LastModified")
        mtime = None
        if modified:
            with contextlib.suppress(ValueError):
                mtime = datetime.fromisoformat(modified.replace("Z", "+00:00")).timestamp()
        etag = item.findtext(f"{ns}ETag")
        objects.append(
            ObjectInfo(
                key=item.findtext(f"{ns}Key") or "",
                size=int(item.findtext(f"{ns}Size") or 0),
                etag=etag.strip('"') if etag else None,
                mtime=mtime,
            )
        )
    truncated = (root.findtext(f"{ns}IsTruncated") or "").lower() == "true"
    token = root.findtext(f"{ns}NextContinuationToken") if truncated else None
    return Listing(objects, token or None)


def _response_error(exc: Any) -> EngineError:
    body = exc.body or b""
    code = _CODE.search(body)
    message = _MESSAGE.search(body)
    status = int(exc.status_code or 0)
    return EngineError(
        status,
        code.group(1).decode() if code else str(status),
        message.group(1).decode(errors="replace") if message else "",
    )


def _is_connect(name: str) -> bool:
    return any(
        part in name
        for part in ("CONNECTION_REFUSED", "NO_ROUTE", "TIMEOUT", "DNS", "HOST", "NETWORK_DOWN")
    )


class BufferReader(io.RawIOBase):
    """A seekable file over a memoryview, so boto3 streams a part without copying the chunk.

    boto3 refuses a memoryview as ``Body``, and ``bytes(view)`` would double the memory of every
    stream; this hands the SDK small pieces of the caller's buffer, and seeks back for retries.
    """

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b: Any) -> int:
        n = max(0, min(len(b), len(self._view) - self._pos))
        b[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else self._pos + size
        out = bytes(self._view[self._pos : end])
        self._pos += len(out)
        return out

    def __len__(self) -> int:
        return max(0, len(self._view) - self._pos)


_ENGINES: dict[Settings, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(s: Settings) -> Engine:
    """One engine per distinct settings for the process (S3 to S3 opens two stores on one
    endpoint; a recursive copy opens a store per object): connections are reused."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(s)
        if engine is None:
            if len(_ENGINES) > 16:  # environments come and go (tests): keep a few
                _ENGINES.clear()
            engine = _ENGINES[s] = Engine(s)
        return engine
