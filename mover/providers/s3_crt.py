"""The S3 store's lean engines: what they share, and the awscrt one (issue 10).

Why: botocore costs about 4.5 M instructions per small request and 0.35 s to import and build a
Session. awscrt's ``S3Client`` (HTTP, connection pool, SigV4 and retries in C, already a
dependency) costs 0.54 M and 66 ms (benchmarks/spike/RESULTS.md); the standard-library client
of :mod:`mover.providers.s3_http` costs 0.66 M and a few milliseconds, and moved small objects
with less CPU than awscrt here, so it is the default (``engine = "http"``) and this engine is
the choice of ``engine = "awscrt"``. Both send the small data-plane requests (PutObject, GETs,
HeadObject, HeadBucket, listings); every ranged GET goes on the standard-library client, and
multipart uploads, copies and deletes stay on botocore. A command that downloads, or uploads
objects up to 8 MiB, never imports boto3.

What the store promises is kept: the caller's crc32c goes as ``x-amz-checksum-crc32c`` (signed,
checked by the server: BadDigest), the engine computes no checksum of its own and signs no
payload (``UNSIGNED-PAYLOAD``, as botocore is configured); retries of single requests are the
engine's (``max_attempts`` - 1, like botocore's), and the final error is classified once, by the
store, from the HTTP status and the S3 error ``Code``.

The engines are built only from what is known without boto3 (:func:`settings`): an endpoint URL
(store option ``endpoint_url`` or ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``), path-style
addressing, a region (option, ``AWS_DEFAULT_REGION``, the profile's ``region`` in
``~/.aws/config``, else ``us-east-1``), and credentials: static keys where the chain would find
them without a request (``credentials_env``; ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``;
a profile's keys in ``~/.aws/credentials`` or ``~/.aws/config``), else awscrt's own providers
(a named profile with roles, SSO or a process; web identity, ECS, IMDS). AWS itself
(virtual-hosted buckets) and ``engine = "botocore"`` keep every request on botocore.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from mover.provider import ObjectInfo

#: Bodies up to this size go through the engine; larger ones stay on botocore's readinto path.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Event-loop threads of the engine (C threads; they run without the GIL).
EVENT_LOOP_THREADS = 2
#: Connections the engine may keep open to the endpoint.
MAX_CONNECTIONS = 64
#: The ``code`` of an EngineError for credentials that could not be had (no request was sent).
NO_CREDENTIALS = "NO_CREDENTIALS"
#: Lean engines a store may ask for (option ``engine``, ``MOVER_S3_ENGINE``; the first is the
#: default); "botocore" (or any other value) keeps every request on botocore.
ENGINES = ("http", "awscrt")
#: Profile settings that make its credentials more than the keys it holds (a role, SSO, a
#: process, web identity): those are left to awscrt's profile provider.
_NOT_STATIC = (
    "role_arn",
    "source_profile",
    "credential_source",
    "credential_process",
    "web_identity_token_file",
    "sso_start_url",
    "sso_session",
    "sso_account_id",
)

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


class Answer(NamedTuple):
    """One response: status, lower-case headers, body (empty for HEAD and PUT, and when it
    went into the caller's buffer), the body's length, and how many attempts it took (1 where
    the engine does not say)."""

    status: int
    headers: dict[str, str]
    body: bytes
    length: int
    attempts: int = 1


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
    #: small requests on "http" (mover.providers.s3_http) or "awscrt" (this module)
    engine: str = "http"
    #: the AWS_* environment the default chain reads (credentials): part of the engine's
    #: identity, so a changed environment gets a new engine, as boto3 Sessions are keyed
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)


def settings(
    options: dict[str, Any], max_attempts: int, connect_s: float, read_s: float
) -> Settings | None:
    """The lean engines' settings for a store's ``options``, or None when it must stay on
    botocore (no endpoint URL known without boto3, virtual addressing asked, ``engine =
    "botocore"``, ``MOVER_S3_ENGINE=botocore``, or credentials_env naming unset variables:
    botocore then gives the precise error)."""
    engine = str(options.get("engine") or os.environ.get("MOVER_S3_ENGINE") or ENGINES[0]).lower()
    if engine not in ENGINES:
        return None
    if str(options.get("addressing_style") or "path") != "path":
        return None
    endpoint = (
        options.get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    if not endpoint or urlsplit(str(endpoint)).scheme not in ("http", "https"):
        return None
    if _proxied(str(endpoint)):
        return None  # the lean engines speak to the endpoint directly; botocore uses proxies
    if options.get("request_checksum_calculation") or options.get("payload_signing_enabled"):
        return None  # the store asked for botocore's own body handling
    explicit = options.get("profile") or None
    profile = explicit or os.environ.get("AWS_PROFILE") or None
    config = _profile_config(profile)
    prefix = options.get("credentials_env")
    static: tuple[str, str, str | None] | None
    if prefix:
        static = _env_keys(str(prefix))
        if static is None:
            return None
    else:
        static = _static_keys(explicit, profile)
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
        engine=engine,
        env=tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))),
    )


def _proxied(endpoint: str) -> bool:
    """Whether the environment routes ``endpoint`` through a proxy (``HTTPS_PROXY`` and its
    kin, less ``NO_PROXY``), as botocore would read it."""
    if not any(k.lower().endswith("_proxy") and k.lower() != "no_proxy" for k in os.environ):
        return False
    from urllib.request import getproxies_environment, proxy_bypass_environment

    parts = urlsplit(endpoint)
    proxies = getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not proxy_bypass_environment(parts.netloc, proxies)


def _env_keys(prefix: str) -> tuple[str, str, str | None] | None:
    """``PREFIX_ACCESS_KEY_ID``, ``PREFIX_SECRET_ACCESS_KEY`` (and ``PREFIX_SESSION_TOKEN``)."""
    key = os.environ.get(f"{prefix}_ACCESS_KEY_ID")
    secret = os.environ.get(f"{prefix}_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    return key, secret, os.environ.get(f"{prefix}_SESSION_TOKEN") or None


def _static_keys(explicit: str | None, profile: str | None) -> tuple[str, str, str | None] | None:
    """The keys the standard chain would settle on without a request, or None when it would
    go further (a role, SSO, a process, web identity, a container or instance role).

    In the chain's order: the environment's keys (unless a profile was named in the store's
    options, as boto3 skips them for a Session given a profile), web identity from the
    environment (not static), then the profile's keys (``~/.aws/credentials``, then
    ``~/.aws/config``) when the profile holds nothing that outranks them.
    """
    if not explicit:
        keys = _env_keys("AWS")
        if keys is not None:
            return keys
        if os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE") and os.environ.get("AWS_ROLE_ARN"):
            return None
    name = profile or "default"
    shared = _ini_section(
        os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials", name
    )
    config = _profile_config(name)
    if any(k in shared or k in config for k in _NOT_STATIC):
        return None
    for section in (shared, config):
        key, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
        if key and secret:
            return key, secret, section.get("aws_session_token") or None
    return None


def _profile_config(profile: str | None) -> dict[str, str]:
    """The profile's section of the AWS config file; empty when there is none. A few lines of
    INI: far cheaper than building a boto3 Session."""
    path = os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
    section = "default" if not profile or profile == "default" else f"profile {profile}"
    return _ini_section(path, section)


def _ini_section(path: str, section: str) -> dict[str, str]:
    """One section of an INI file (``~`` expanded); empty when the file or section is not
    there or the file does not parse."""
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        return {}
    import configparser

    parser = configparser.RawConfigParser()
    try:
        parser.read(path)
    except configparser.Error:
        return {}
    return dict(parser[section]) if parser.has_section(section) else {}


def provider(s: Settings, bootstrap: Any) -> Any:
    """The awscrt credentials provider for ``s``: its static keys, its profile, or the
    default chain."""
    from awscrt import auth

    if s.static is not None:
        return auth.AwsCredentialsProvider.new_static(*s.static)
    if s.profile:
        return auth.AwsCredentialsProvider.new_profile(bootstrap, profile_name=s.profile)
    return auth.AwsCredentialsProvider.new_default_chain(bootstrap)


class Call(NamedTuple):
    """One request as a lean engine sends it: the path encoded, the query URI-encoded."""

    operation: str
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: memoryview | None
    into: memoryview | None


class Lean:
    """What a lean engine offers the store: one request, waited for, answered with an
    :class:`Answer` or failed with an :class:`EngineError` (after the engine's own retries).
    Path-style addressing: ``/BUCKET/KEY`` under the endpoint's path."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        parts = urlsplit(s.endpoint_url)
        self.host = parts.netloc
        self.base = parts.path.rstrip("/")

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
        """Send one request and wait for it. ``operation`` names it (S3's name); ``query`` is
        URI-encoded already; ``body`` is sent from the caller's buffer; ``into`` receives the
        response body in place (its length is the most it takes: a longer body fails with
        ``BodyTooLong``). Raises :class:`EngineError`."""
        path = f"{self.base}/{quote(bucket, safe='')}"
        if key is not None:
            path += "/" + quote(key, safe="/~")
        return self._send(Call(operation, method, path, query, headers or [], body, into))

    def _send(self, call: Call) -> Answer:
        raise NotImplementedError


class Engine(Lean):
    """One awscrt ``S3Client`` for one endpoint, shared by every thread of the store."""

    def __init__(self, s: Settings) -> None:
        from awscrt import auth, io, s3

        super().__init__(s)
        parts = urlsplit(s.endpoint_url)
        self._s3 = s3
        loop = io.EventLoopGroup(EVENT_LOOP_THREADS)
        bootstrap = io.ClientBootstrap(loop, io.DefaultHostResolver(loop))
        creds = provider(s, bootstrap)
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

    def _send(self, call: Call) -> Answer:
        from awscrt import http
        from awscrt.exceptions import AwsCrtError

        method, body, into = call.method, call.body, call.into
        path = call.path + ("?" + call.query if call.query else "")
        sent = [("Host", self.host), *call.headers]
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
            made = start(self.client, call.operation, request, on_headers, on_body)
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


def _root(body: bytes) -> tuple[Any, str]:
    """An XML answer's root element and its namespace prefix (``{uri}`` or "")."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(body)
    return root, root.tag.partition("}")[0] + "}" if root.tag.startswith("{") else ""


def _when(text: str | None) -> Any:
    """An ISO 8601 time of an S3 answer as an aware datetime, or None."""
    from datetime import datetime

    if text:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return None


def parse_listing(body: bytes) -> Listing:
    """A ListObjectsV2 answer's objects (key, size, ETag, mtime) and continuation token."""
    root, ns = _root(body)
    objects = []
    for item in root.iter(f"{ns}Contents"):
        modified = _when(item.findtext(f"{ns}LastModified"))
        etag = item.findtext(f"{ns}ETag")
        objects.append(
            ObjectInfo(
                key=item.findtext(f"{ns}Key") or "",
                size=int(item.findtext(f"{ns}Size") or 0),
                etag=etag.strip('"') if etag else None,
                mtime=modified.timestamp() if modified is not None else None,
            )
        )
    truncated = (root.findtext(f"{ns}IsTruncated") or "").lower() == "true"
    token = root.findtext(f"{ns}NextContinuationToken") if truncated else None
    return Listing(objects, token or None)


def xml_text(body: bytes, tag: str) -> str:
    """The text of the first ``tag`` element of an S3 answer; ValueError if there is none."""
    from xml.etree import ElementTree

    try:
        root, _ = _root(body)
    except ElementTree.ParseError as exc:
        raise ValueError(f"the answer is no XML: {exc}") from exc
    for element in root.iter():
        if element.tag.rpartition("}")[2] == tag and element.text:
            return element.text
    raise ValueError(f"the answer holds no {tag}")


def parse_uploads(body: bytes) -> list[dict[str, Any]]:
    """A ListMultipartUploads answer's uploads as botocore shapes them: ``Key``,
    ``UploadId``, ``Initiated`` (an aware datetime, or None)."""
    root, ns = _root(body)
    return [
        {
            "Key": item.findtext(f"{ns}Key") or "",
            "UploadId": item.findtext(f"{ns}UploadId") or "",
            "Initiated": _when(item.findtext(f"{ns}Initiated")),
        }
        for item in root.iter(f"{ns}Upload")
    ]


def parse_attributes(body: bytes) -> dict[str, Any]:
    """A GetObjectAttributes answer (``ETag``, ``ObjectParts``) shaped as botocore returns it:
    ``{"ETag", "ObjectParts": {"Parts": [{"PartNumber", "Size", "Checksum...": ...}],
    "IsTruncated", "NextPartNumberMarker"}}``. Raises ValueError on a malformed answer."""
    from xml.etree import ElementTree

    try:
        root, ns = _root(body)
    except ElementTree.ParseError as exc:
        raise ValueError(f"GetObjectAttributes answer is no XML: {exc}") from exc
    out: dict[str, Any] = {}
    etag = root.findtext(f"{ns}ETag")
    if etag is not None:
        out["ETag"] = etag
    listing = root.find(f"{ns}ObjectParts")
    if listing is not None:
        parts = []
        for item in listing.iter(f"{ns}Part"):
            part: dict[str, Any] = {}
            for child in item:
                name = child.tag[len(ns) :]
                text = child.text or ""
                part[name] = int(text) if name in ("PartNumber", "Size") else text
            parts.append(part)
        out["ObjectParts"] = {
            "Parts": parts,
            "IsTruncated": (listing.findtext(f"{ns}IsTruncated") or "").lower() == "true",
            "NextPartNumberMarker": int(listing.findtext(f"{ns}NextPartNumberMarker") or 0),
        }
    return out


def _response_error(exc: Any) -> EngineError:
    code, message = error_fields(exc.body or b"")
    status = int(exc.status_code or 0)
    return EngineError(status, code or str(status), message)


def error_fields(body: bytes) -> tuple[str, str]:
    """The ``Code`` and ``Message`` of an S3 error answer's XML (empty where absent)."""
    code = _CODE.search(body)
    message = _MESSAGE.search(body)
    return (
        code.group(1).decode(errors="replace") if code else "",
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
