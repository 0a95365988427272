"""The OpenStack Swift store (``swift://container/object``), on python-swiftclient.

Credentials are found the way the ``swift`` command line finds them, so an operator's usual
environment works unchanged:

- v1 (tempauth, swauth): ``ST_AUTH``, ``ST_USER``, ``ST_KEY`` (``ST_AUTH_VERSION``, default 1.0);
- Keystone: ``OS_AUTH_URL``, ``OS_USERNAME``, ``OS_PASSWORD``, ``OS_PROJECT_NAME``,
  ``OS_USER_DOMAIN_NAME``, ``OS_PROJECT_DOMAIN_NAME``, ``OS_REGION_NAME`` (version 3 when a domain
  is named, as the CLI decides; needs python-keystoneclient);
- a configured store's options, which win over the environment: ``auth_url``, ``user``,
  ``auth_version``, ``project_name``, ``user_domain_name``, ``project_domain_name``,
  ``region_name``, ``storage_url`` and ``credentials_env = "PREFIX"``, which reads the secret from
  ``PREFIX_KEY`` or ``PREFIX_PASSWORD``. A secret never sits in the options themselves.

**One token, one connection per thread.** ``swiftclient.Connection`` is not thread-safe (it holds
one HTTP connection and its auth state), while chunks run on many threads. So each thread has its
own Connection, and all of them share one authentication: the token is fetched once and handed
to every connection as ``preauthurl``/``preauthtoken``. A 401 renews the shared token once (one
thread renews, the others reuse its result) and the call is repeated once: expired tokens are
renewed without failing a chunk. Connections are made with ``retries=0``: mover's one retry
policy (:mod:`mover.retry`) decides, from the ``retryable`` flag set here, so retries never
multiply.

**Writes stage segments; commit makes the object.** Each part is a segment object in
``<container>_segments`` (the ``swift`` CLI's convention, so its tools see them) named
``<object>/<upload-id>/<part:08d>``. Each segment is sent with its md5 as ``ETag``, so Swift
refuses a part whose bytes differ (422) and answers with the md5 it computed itself. Until
commit the object name is untouched: an existing object stays readable, and a failed or
aborted upload leaves it as it was (abort deletes this upload's segments, and nothing else).
Commit then makes the object in one request:

- several parts: PUT the Static Large Object manifest (``?multipart-manifest=put``), in which
  Swift checks every segment's ETag and size again;
- one part up to ``plain_max_bytes`` (64 MiB): a server-side copy of the segment to the object
  name, then the segment is deleted. Small objects so end as plain objects ("small ones as one
  PUT"), whose ETag is the md5 of their bytes, with nothing in the segments container to
  orphan; a PUT straight to the object name at ``write_part`` would instead replace an existing
  object before commit, which the chunk-writer contract forbids. The copy costs the cluster one
  more read and write of at most 64 MiB; a larger single part stays an SLO of one segment,
  whose commit is one small PUT;
- no bytes: a plain PUT of the empty object (nothing to stage).

**Staged segments expire until commit.** Each segment is written with ``X-Delete-After``
(option ``segment_expiry_s``, default ``MOVER_SEGMENT_EXPIRY_S`` or 7 days, the job records'
lifetime; 0 turns it off), so a failed upload whose abort never ran (Swift down at that moment,
the worker killed) cannot leave segments forever: Swift serves them no more once the time has
passed, and its object expirer removes them. At commit, once the manifest is in place, the
expiry is removed from every segment the manifest names (a ``POST`` with
``X-Remove-Delete-At``, in parallel), so a committed object never expires; a plain object
made from its one segment is copied with ``X-Fresh-Metadata`` and so does not inherit the
segment's expiry. An upload that outlives the bound (resumed more than 7 days later) finds its
segments gone: Swift refuses the manifest and the object is uploaded again.

When an upload replaces an SLO that mover wrote earlier, the old upload's segments are deleted
after the new object is in place, as ``swift upload`` does; segments not laid out by mover are
left alone, since another manifest may share them.

**A missing container is an error, not created.** The ``swift`` CLI creates a container on upload;
for backups a typo in a container name would then silently scatter data into a new container,
so :meth:`SwiftProvider.check_writable` refuses before any byte moves. The segments container is
mover's own bookkeeping and is created when missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, urlsplit

from mover import httpdate, retry
from mover.digests import Digest
from mover.errors import (
    AccessDenied,
    BadLocation,
    CannotHandle,
    ChunkFailed,
    ConfigError,
    MoverError,
    NotWritable,
    ObjectNotFound,
    PluginLoadError,
    SourceChanged,
    UsageError,
    VerificationFailed,
)
from mover.location import Location
from mover.provider import (
    COMBINE_HEX,
    COMBINE_ONE,
    Capabilities,
    ChunkWriter,
    GiB,
    MiB,
    ObjectInfo,
    PartLimits,
    PartReceipt,
    SourceCheck,
    StoreProvider,
    check_receipts,
    digest_for_store,
)

try:
    import requests
    import urllib3
    from swiftclient import client as swift_client
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise PluginLoadError(
        f"provider 'swift' needs python-swiftclient: pip install python-swiftclient ({exc})"
    ) from exc

T = TypeVar("T")

#: Suffix of the container that holds segments, as the ``swift`` CLI names it.
SEGMENTS_SUFFIX = "_segments"
#: Swift's largest object, and so its largest segment (``max_file_size``: 5 GiB + 2 bytes).
MAX_SEGMENT_BYTES = 5 * GiB
#: Segment size of a server-side copy too large for one plain object (at least; raised to fit
#: the object in ``max_manifest_segments``).
COPY_SEGMENT_BYTES = 1 * GiB
#: Ranged server-side copies run at once for one large object.
COPY_STREAMS = 4
#: A one-part object up to this size becomes a plain object at commit (a server-side copy of
#: its segment, cheap at this size); larger ones stay an SLO of one segment.
PLAIN_MAX_BYTES = 64 * MiB
#: SLO's default ``max_manifest_segments``.
MAX_MANIFEST_SEGMENTS = 1000
#: Segments below 1 MiB are accepted by SLO (its minimum is 1 byte) but, past the first ten,
#: rate-limited on every GET (``rate_limit_under_size``): 1 MiB keeps reads at full speed.
MIN_SEGMENT_BYTES = 1 * MiB
#: What a ranged GET reads from the socket at a time, copied into the caller's buffer: bounds
#: the temporaries (urllib3 and http.client copy each piece once or twice) whatever the chunk
#: size. With 8 MiB, 4 streams of 64 MiB peaked at 358 MiB RSS downloading; with 1 MiB at
#: 301 MiB, at the same speed.
READ_PIECE_BYTES = 1 * MiB
#: Socket time-out of every request, in seconds, unless the ``timeout_s`` option says otherwise.
DEFAULT_TIMEOUT_S = 60.0
#: How long a container seen to exist is not checked again, in seconds.
CONTAINER_SEEN_S = 60.0
#: md5 of no bytes: the ETag of an empty object.
EMPTY_MD5 = hashlib.md5(b"").hexdigest()
#: Seconds a staged segment lives unless its upload is committed (``segment_expiry_s``,
#: ``MOVER_SEGMENT_EXPIRY_S``): the job records' lifetime.
SEGMENT_EXPIRY_S = 7 * 24 * 3600
#: Segments whose expiry is removed at once at commit.
UNEXPIRE_STREAMS = 8
#: Statuses worth retrying: server errors, time-outs, throttling.
_RETRYABLE_STATUS = {408, 429, 498, 499}


# --- credentials ---------------------------------------------------------------------------


@dataclass(eq=False, repr=False)
class _Credentials:
    """Where and as whom to authenticate; the key is kept out of ``repr`` and messages."""

    auth_url: str
    user: str
    key: str
    auth_version: str
    os_options: dict[str, str]
    #: Where the credentials came from, for messages ("ST_AUTH/ST_USER/ST_KEY").
    source: str

    def identity(self) -> tuple[str, ...]:
        """What names the account, without the secret: equal identities reach one account."""
        o = self.os_options
        return (
            self.auth_url.rstrip("/"),
            self.user,
            self.auth_version,
            o.get("project_name", "") or o.get("project_id", "") or o.get("tenant_name", ""),
            o.get("region_name", ""),
            o.get("object_storage_url", ""),
        )

    def __repr__(self) -> str:
        return f"<swift credentials {self.user!r} at {self.auth_url}>"


def _normalise_version(version: str) -> str:
    """Tolerate what the CLI tolerates: ``1`` -> ``1.0``, ``2`` -> ``2.0``, ``3.0`` -> ``3``."""
    v = version.strip().lower().lstrip("v")
    return {"1": "1.0", "2": "2.0", "3.0": "3"}.get(v, v)


def resolve_credentials(options: dict[str, Any], env: dict[str, str] | None = None) -> _Credentials:
    """Find the credentials for a store: its options first, then the environment.

    Mirrors the ``swift`` CLI: ``ST_*`` variables mean v1 auth; ``OS_*`` variables mean
    Keystone, version 3 when a domain is named and 2.0 otherwise, unless a version is set.
    Raises :class:`ConfigError` naming what is missing (never a value).
    """
    env = dict(os.environ if env is None else env)
    o = options
    os_names = (
        "project_name",
        "project_id",
        "tenant_name",
        "user_domain_name",
        "user_domain_id",
        "project_domain_name",
        "project_domain_id",
        "region_name",
    )
    if o.get("auth_url"):
        prefix = o.get("credentials_env")
        key = ""
        if prefix:
            key = env.get(f"{prefix}_KEY") or env.get(f"{prefix}_PASSWORD") or ""
            if not key:
                raise ConfigError(
                    f"swift store at {o['auth_url']}: credentials_env = {prefix!r} but neither "
                    f"{prefix}_KEY nor {prefix}_PASSWORD is set in the environment"
                )
        else:
            key = env.get("ST_KEY") or env.get("OS_PASSWORD") or ""
        user = str(o.get("user") or env.get("ST_USER") or env.get("OS_USERNAME") or "")
        os_options = {n: str(o[n]) for n in os_names if o.get(n)}
        version = o.get("auth_version")
        if not version:
            domains = ("user_domain_name", "user_domain_id", "project_domain_name")
            version = "3" if any(o.get(n) for n in domains) else "1.0"
        source = f"store options (credentials_env={prefix})" if prefix else "store options"
        creds = _Credentials(
            str(o["auth_url"]), user, key, _normalise_version(str(version)), os_options, source
        )
    elif env.get("ST_AUTH") and env.get("ST_USER") and env.get("ST_KEY"):
        version = env.get("ST_AUTH_VERSION") or env.get("OS_AUTH_VERSION") or "1.0"
        creds = _Credentials(
            env["ST_AUTH"],
            env["ST_USER"],
            env["ST_KEY"],
            _normalise_version(version),
            {},
            "ST_AUTH/ST_USER/ST_KEY",
        )
    elif env.get("OS_AUTH_URL"):
        os_options = {n: env[f"OS_{n.upper()}"] for n in os_names if env.get(f"OS_{n.upper()}")}
        version = (
            env.get("OS_AUTH_VERSION")
            or env.get("OS_IDENTITY_API_VERSION")
            or ("3" if any("domain" in n for n in os_options) else "2.0")
        )
        creds = _Credentials(
            env["OS_AUTH_URL"],
            env.get("OS_USERNAME", ""),
            env.get("OS_PASSWORD", ""),
            _normalise_version(version),
            os_options,
            "OS_AUTH_URL/OS_USERNAME/OS_PASSWORD",
        )
    else:
        raise ConfigError(
            "no Swift credentials: set ST_AUTH, ST_USER and ST_KEY (v1), or OS_AUTH_URL, "
            "OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME (Keystone), or configure a store "
            "with auth_url, user and credentials_env"
        )
    if o.get("storage_url"):
        creds.os_options["object_storage_url"] = str(o["storage_url"])
    missing = [n for n, v in (("user", creds.user), ("key", creds.key)) if not v]
    if missing:
        raise ConfigError(
            f"Swift credentials from {creds.source} lack {' and '.join(missing)} "
            f"(auth URL {creds.auth_url})"
        )
    return creds


# --- errors --------------------------------------------------------------------------------


def _endpoint_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


_TIMEOUTS = (TimeoutError, requests.Timeout, urllib3.exceptions.TimeoutError)
#: What a request or a body read raises when the connection fails, at any layer below swiftclient.
_NETWORK_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


def _network_error(exc: BaseException, endpoint: str, what: str) -> MoverError:
    """A connection refused, reset or timed out: retryable, naming the endpoint."""
    text = str(exc).lower()
    if "refused" in text:
        reason = "connection refused"
    elif "timed out" in text or "timeout" in text or isinstance(exc, _TIMEOUTS):
        reason = "timed out"
    elif "reset" in text or "aborted" in text or "broken pipe" in text:
        reason = "connection reset"
    else:
        reason = type(exc).__name__
    return ChunkFailed(
        f"{what}: cannot reach Swift at {endpoint} ({reason}); it will be retried",
        retryable=True,
    )


# --- the provider --------------------------------------------------------------------------


class SwiftProvider(StoreProvider):
    """One Swift container. Options: see the module docstring; also ``timeout_s`` (float,
    seconds per request, default 60), ``listing_limit`` (objects per listing page, default
    Swift's 10,000) and part limits ``min_part_bytes``, ``max_part_bytes``, ``max_parts``,
    ``preferred_part_bytes`` for clusters configured away from Swift's defaults."""

    scheme = "swift"
    examples = ("swift://backups/templates/centos.qcow2", "store:swift-east/volumes/vol-1.img")

    def __init__(self, location: Location, options: dict[str, Any] | None = None) -> None:
        super().__init__(location, options)
        o = self.options
        self.container = location.store
        self.segments_container = str(o.get("segments_container") or "") or (
            self.container + SEGMENTS_SUFFIX
        )
        self.timeout_s = float(o.get("timeout_s", DEFAULT_TIMEOUT_S))
        self.listing_limit = int(o["listing_limit"]) if o.get("listing_limit") else None
        #: A one-part object up to this size is committed as a plain object, not an SLO.
        self.plain_max_bytes = int(o.get("plain_max_bytes", PLAIN_MAX_BYTES))
        #: Seconds staged segments live until their upload is committed (0: forever).
        self.segment_expiry_s = int(
            o.get("segment_expiry_s", os.environ.get("MOVER_SEGMENT_EXPIRY_S") or SEGMENT_EXPIRY_S)
        )
        self.creds = resolve_credentials(o)
        self._caps = Capabilities(
            ranged_read=True,
            sequential_read=True,
            chunk_writer=PartLimits(
                min_part_bytes=int(o.get("min_part_bytes", MIN_SEGMENT_BYTES)),
                max_part_bytes=int(o.get("max_part_bytes", MAX_SEGMENT_BYTES)),
                max_parts=int(o.get("max_parts", MAX_MANIFEST_SEGMENTS)),
                preferred_part_bytes=int(o.get("preferred_part_bytes", 64 * MiB)),
            ),
            streaming_write=True,
            # A plain PUT is atomic and md5-checked by Swift: one request for a small object,
            # where a staged segment takes four (put, copy, delete, check).
            atomic_put_max_bytes=int(o.get("max_part_bytes", MAX_SEGMENT_BYTES)),
            server_side_copy=True,
            checksum_algorithms=("md5",),
        )
        self._auth_lock = threading.Lock()
        self._storage_url: str | None = None
        self._token: str | None = None
        self._local = threading.local()
        self._connections: list[Any] = []
        self._connections_lock = threading.Lock()
        #: container -> when it was last seen to exist (monotonic seconds).
        self._containers_seen: dict[str, float] = {}

    @classmethod
    def open(cls, location: Location, options: dict[str, Any] | None = None) -> SwiftProvider:
        if not location.store:
            raise BadLocation("swift URLs name a container: swift://container/object")
        if "/" in location.store or ":" in location.store:
            raise BadLocation(
                f"swift://{location.store}: the part after swift:// is a container name; "
                "configure the auth URL with ST_AUTH or a store's auth_url"
            )
        return cls(location, options)

    @classmethod
    def store_id(cls, location: Location, options: dict[str, Any] | None = None) -> str:
        # The account is part of the identity: one container name on two clusters is two stores.
        # Credentials are read here only to name the account (auth URL and user, no secret).
        try:
            ident = resolve_credentials(dict(options or {})).identity()
        except ConfigError:
            ident = ("?",)
        return f"swift://{'|'.join(ident)}/{location.store}/{location.root}"

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def describe(self) -> str:
        return f"swift://{self.container}"

    def _where(self, key: str | None = None, container: str | None = None) -> str:
        container = container or self.container
        return f"swift://{container}/{key}" if key else f"swift://{container}"

    # -- authentication and connections -----------------------------------------------------

    def _authenticate(self, stale: str | None) -> tuple[str, str]:
        """The shared storage URL and token; renewed when ``stale`` is the current token.

        Only one thread talks to the auth service: the others wait on the lock and then find a
        token that differs from the one that failed them.
        """
        url, token = self._storage_url, self._token
        if stale is None and url and token:
            return url, token  # the common case, without the lock
        with self._auth_lock:
            if self._token is not None and self._token != stale and self._storage_url:
                return self._storage_url, self._token
            c = self.creds
            try:
                url, token = swift_client.get_auth(
                    c.auth_url,
                    c.user,
                    c.key,
                    auth_version=c.auth_version,
                    os_options=dict(c.os_options),
                    timeout=self.timeout_s,
                )
            except swift_client.ClientException as exc:
                raise self._auth_error(exc) from None
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise _network_error(
                    exc, c.auth_url, f"authenticating to {self.describe()}"
                ) from None
            if c.os_options.get("object_storage_url"):
                url = c.os_options["object_storage_url"]
            self._storage_url, self._token = url, token
            return url, token

    def _auth_error(self, exc: Any) -> MoverError:
        c = self.creds
        status = getattr(exc, "http_status", None)
        if status in (401, 403):
            return AccessDenied(
                f"Swift at {c.auth_url} refused the credentials of user {c.user!r} "
                f"({status} {exc.http_reason or 'Unauthorized'}); check {c.source}"
            )
        if status is None:
            text = self._redact(str(exc))
            if "keystoneclient" in text:
                return ConfigError(
                    f"Swift auth version {c.auth_version} at {c.auth_url} needs "
                    "python-keystoneclient: pip install python-keystoneclient"
                )
            return ConfigError(f"cannot authenticate to Swift at {c.auth_url}: {text[:200]}")
        retryable = status >= 500 or status in _RETRYABLE_STATUS
        return ChunkFailed(
            f"Swift auth at {c.auth_url} answered {status} {exc.http_reason or ''}".rstrip(),
            retryable=retryable,
        )

    def _redact(self, text: str) -> str:
        """Vendor text with the secret cut out, should a library ever echo it."""
        key = self.creds.key
        return text.replace(key, "***") if key else text

    def _connection(self) -> Any:
        """This thread's Connection (created on first use), pointed at the shared token."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = swift_client.Connection(
                preauthurl="http://unset.invalid/",
                preauthtoken="unset",
                retries=0,
                timeout=self.timeout_s,
                retry_on_ratelimit=False,
            )
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _call(self, fn: Callable[[Any], T], what: str, *, not_found: str | None = None) -> T:
        """Run ``fn(connection)`` with the shared token, renewing it once on a 401.

        Vendor exceptions leave as mover errors; ``what`` names the object for messages and
        ``not_found`` is the message of a 404 (None: a 404 reads as ``what`` not found).
        """
        return self._call_on(self._connection(), fn, what, not_found=not_found)

    def _call_on(
        self, conn: Any, fn: Callable[[Any], T], what: str, *, not_found: str | None = None
    ) -> T:
        """:meth:`_call` on a given Connection."""
        url, token = self._authenticate(None)
        for attempt in (1, 2):
            if conn.url != url and conn.http_conn is not None:
                conn.close()  # a new storage URL (first use, re-auth): a new HTTP connection
            # swiftclient forgets the token on a 401, so keep the one this call used.
            conn.url, conn.token = url, token
            try:
                return fn(conn)
            except MoverError:
                raise
            except swift_client.ClientException as exc:
                if exc.http_status == 401 and attempt == 1:
                    url, token = self._authenticate(token)
                    continue
                raise self._translate(exc, what, not_found) from None
            except _NETWORK_ERRORS as exc:
                with contextlib.suppress(Exception):
                    conn.close()  # framing may be broken: the next call opens a fresh one
                raise _network_error(exc, _endpoint_of(url), what) from None
        raise AssertionError("unreachable")

    def _translate(self, exc: Any, what: str, not_found: str | None) -> MoverError:
        status = exc.http_status
        reason = exc.http_reason or ""
        if status == 404:
            return ObjectNotFound(not_found or f"{what}: no such object")
        if status in (401, 403):
            c = self.creds
            return AccessDenied(
                f"{what}: Swift at {c.auth_url} denied user {c.user!r} ({status} {reason}); "
                f"check {c.source} and the container's ACLs"
            )
        if status == 422:
            return VerificationFailed(
                f"{what}: Swift computed an md5 different from the one sent (422): the bytes "
                "changed in flight",
                retryable=True,
            )
        if status == 413:
            return UsageError(f"{what}: Swift refused the size (413 {reason})")
        if status is None:
            # swiftclient's own refusals (a URL scheme it cannot speak): retrying cannot help.
            return ChunkFailed(f"{what}: {self._redact(str(exc))[:200]}", retryable=False)
        retryable = status >= 500 or status in _RETRYABLE_STATUS
        return ChunkFailed(
            f"{what}: Swift answered {status} {reason}".rstrip(), retryable=retryable
        )

    def storage_url(self) -> str:
        """The account's storage URL (authenticates if needed)."""
        return self._authenticate(None)[0]

    def close(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(Exception):  # closing is best effort
                conn.close()
        self._local = threading.local()

    # -- reading ----------------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo:
        return self._stat(key)

    def _stat(self, key: str, *, newest: bool = False) -> ObjectInfo:
        """HEAD ``key``; ``newest`` asks every replica (``X-Newest``), for checks right after a
        write, which one replica that missed it must not answer for the others."""
        headers = {"X-Newest": "true"} if newest else None
        answer = self._call(
            lambda c: c.head_object(self.container, key, headers=headers), self._where(key)
        )
        return _info_from_headers(key, answer)

    def read_into(self, key: str, offset: int, buf: memoryview) -> int:
        return self._read(key, offset, buf, None)

    def read_version_into(self, key: str, version: str, offset: int, buf: memoryview) -> int:
        """A ranged GET whose answer must name ``version`` as its ETag (an SLO's ETag for an
        SLO; Swift checks each segment against the manifest as it serves it). Not ``If-Match``:
        Swift 2.38 answers 412 to it for a plain object made by copying an SLO, whatever the
        ETag sent."""
        return self._read(key, offset, buf, version)

    def _read(self, key: str, offset: int, buf: memoryview, etag: str | None) -> int:
        want = len(buf)
        if want == 0:
            return 0
        what = self._where(key)
        headers = {"Range": f"bytes={offset}-{offset + want - 1}"}

        def get(conn: Any) -> int:
            try:
                answer, body = conn.get_object(
                    self.container, key, resp_chunk_size=READ_PIECE_BYTES, headers=headers
                )
            except swift_client.ClientException as exc:
                if exc.http_status == 416 and etag:  # the version read was longer than this
                    raise _changed(what, etag) from None
                if exc.http_status == 416:  # offset at or past the end
                    return 0
                raise
            try:
                if etag and str(answer.get("etag") or "").strip('"') != etag:
                    raise _changed(what, etag)
                if offset and "content-range" not in answer:
                    raise ChunkFailed(f"{what}: Swift ignored the range from {offset}")
                got = _read_body_into(body, buf)
                if got == want and _release(body):
                    body = None  # its connection went back to the pool, to be reused
                return got
            finally:
                if body is not None:
                    body.close()

        return self._call(get, what)

    def source_check(self, key: str, info: ObjectInfo, exact: bool = False) -> SourceCheck:
        """A plain object's ETag is the md5 of its bytes; a Static Large Object's manifest
        gives each segment's md5 and size, so each chunk (aligned to segments) is checked as
        soon as it is read, and the SLO's ETag (the md5 of those md5s) proves the manifest is
        the version the job was prepared from. Every ranged read's answer must name that
        version as its ETag (``pinned``).

        Requests: none for a plain object whose listing or ``stat`` said so (``info.checksum``);
        otherwise a HEAD, and for an SLO one GET of its manifest. A Dynamic Large Object has no
        stored digest of its bytes: only its ETag is held, compared before commit.
        """
        etag = info.etag
        algorithm, _, value = (info.checksum or "").partition(":")
        if etag and algorithm == "md5" and value == etag:
            return _plain_check(info.size, etag)
        what = self._where(key)
        head = self._call(lambda c: c.head_object(self.container, key), what)
        now = _info_from_headers(key, head)
        version = now.etag
        if etag and version != etag:
            raise _changed(what, etag)
        if info.size is not None and now.size != info.size:
            raise _changed(what, etag)
        if now.checksum is not None:  # a plain object
            return _plain_check(now.size, version)
        if not _is_slo(head):
            return SourceCheck(size=now.size, version=version)  # a DLO: its ETag only
        return self._slo_check(key, now.size, version)

    def _slo_check(self, key: str, size: int | None, version: str | None) -> SourceCheck:
        what = self._where(key)
        _, body = self._call(
            lambda c: c.get_object(self.container, key, query_string="multipart-manifest=get"),
            what,
        )
        try:
            segments = [s for s in json.loads(body) if isinstance(s, dict)]
        except ValueError:
            return SourceCheck(size=size, version=version, pinned=bool(version))
        sizes: list[int] = []
        expected: list[str] = []
        plain = True
        for segment in segments:
            first, _, last = str(segment.get("range") or "").partition("-")
            whole = not segment.get("range") and not segment.get("sub_slo")
            plain = plain and whole
            sizes.append(
                int(last) - int(first) + 1 if segment.get("range") else int(segment["bytes"])
            )
            # A ranged or nested segment's hash is not the md5 of the bytes it adds.
            expected.append(str(segment.get("hash") or "") if whole else "")
        if sum(sizes) != size:
            raise _changed(what, version)
        if plain and hashlib.md5("".join(expected).encode()).hexdigest() != version:
            raise _changed(what, version)  # the manifest is not the one the ETag was made of
        return SourceCheck(
            size=size,
            version=version,
            pinned=bool(version),
            algorithm="md5",
            combine=COMBINE_HEX if plain else "",
            whole=(version or "") if plain else "",
            sizes=tuple(sizes),
            expected=tuple(expected),
            what=f"the Swift SLO manifest (md5 of each of {len(sizes)} segments)",
        )

    def open_read(self, key: str) -> BinaryIO:
        """The whole object as a stream (for strategies that read sequentially).

        The GET holds this thread's connection until the stream is read to its end or closed,
        so it gets a Connection of its own rather than the thread's.
        """
        what = self._where(key)
        conn = swift_client.Connection(
            preauthurl="http://unset.invalid/",  # _call_on sets the shared URL and token
            preauthtoken="unset",
            retries=0,
            timeout=self.timeout_s,
            retry_on_ratelimit=False,
        )
        try:
            _, body = self._call_on(
                conn,
                lambda c: c.get_object(self.container, key, resp_chunk_size=READ_PIECE_BYTES),
                what,
            )
        except BaseException:
            conn.close()
            raise
        return io.BufferedReader(_BodyStream(self, body, conn, what), READ_PIECE_BYTES)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        marker = ""
        what = self._where(prefix)
        missing = f"{self._where()}: no such container"
        while True:
            _, page = self._call(
                lambda c, m=marker: c.get_container(
                    self.container, prefix=prefix, marker=m, limit=self.listing_limit
                ),
                what,
                not_found=missing,
            )
            if not page:
                return
            for entry in page:
                if "name" not in entry:
                    continue  # a subdir entry (never asked for: no delimiter)
                slo_etag = str(entry.get("slo_etag") or "").strip('"')
                etag = slo_etag or entry.get("hash")
                yield ObjectInfo(
                    key=entry["name"],
                    size=int(entry.get("bytes", 0)),
                    # An SLO's listing hash is its manifest's md5; its ETag is slo_etag.
                    etag=etag,
                    checksum=None if slo_etag or not etag else f"md5:{etag}",
                    mtime=_listing_time(entry.get("last_modified")),
                )
            marker = page[-1].get("name") or page[-1].get("subdir", "")

    # -- writing ----------------------------------------------------------------------------

    def check_writable(self, key: str, size: int | None) -> None:
        if not key or key.endswith("/"):
            raise UsageError(f"{self._where(key)}: name the destination object")
        try:
            self._check_container(self.container)
        except ObjectNotFound:
            raise NotWritable(
                f"{self._where()}: no such container; mover does not create containers "
                f"(a mistyped name would silently make a new one): create it first, e.g. "
                f"`swift post {self.container}`"
            ) from None
        limits = self._caps.chunk_writer
        assert limits is not None
        if size is not None and size > limits.max_part_bytes * limits.max_parts:
            raise UsageError(f"{self._where(key)}: {size} bytes is more than one SLO can hold")

    def _check_container(self, container: str) -> None:
        """HEAD ``container`` unless it was seen lately; raise ObjectNotFound if it is absent.

        Remembered for :data:`CONTAINER_SEEN_S` seconds, so that a run of small objects pays
        one HEAD per container, not one per object.
        """
        seen = self._containers_seen.get(container)
        if seen is not None and time.monotonic() - seen < CONTAINER_SEEN_S:
            return
        self._call(lambda c: c.head_container(container), self._where(container=container))
        self._containers_seen[container] = time.monotonic()

    def _forget_container(self, container: str) -> None:
        self._containers_seen.pop(container, None)

    def _ensure_segments_container(self) -> None:
        try:
            self._check_container(self.segments_container)
        except ObjectNotFound:
            self._call(
                lambda c: c.put_container(self.segments_container),
                self._where(container=self.segments_container),
            )
            self._containers_seen[self.segments_container] = time.monotonic()

    def open_writer(self, key: str, size: int | None) -> ChunkWriter:
        if not key or key.endswith("/"):
            raise UsageError(f"{self._where(key)}: name the destination object")
        self._ensure_segments_container()
        upload_id = f"mover-{time.time_ns():x}-{secrets.token_hex(4)}"
        return SwiftWriter(self, key, upload_id, self.segments_container)

    def resume_writer(self, key: str, state: dict[str, Any]) -> ChunkWriter:
        return SwiftWriter(self, key, state["upload_id"], state["segments_container"])

    def put(self, key: str, data: memoryview, expected: Digest) -> ObjectInfo:
        """Write a whole small object in one PUT, with its md5 as ETag (Swift refuses a
        mismatch with 422).

        For an object of one part (the streaming strategy's ``Plan.put``) a single PUT is as
        safe as a chunk writer's commit (Swift stores an object whole or not at all, and
        replaces an existing one only when the PUT succeeds) and costs one request instead of
        four (stage, copy, delete, check). If ``key`` was an SLO written by mover, its segments
        are deleted after the PUT succeeds.
        """
        what = self._where(key)
        md5 = digest_for_store(data, expected, "md5", what, retryable=False).hex
        size = len(data)

        def put(headers: dict[str, str]) -> Any:
            def call(c: Any) -> Any:
                try:
                    return c.put_object(
                        self.container,
                        key,
                        _MemoryReader(data) if size else b"",
                        content_length=size,
                        etag=md5,
                        headers=headers,
                    )
                except swift_client.ClientException as exc:
                    if exc.http_status == 412:  # If-None-Match: the object exists
                        return None
                    raise

            return self._call(call, what, not_found=f"{self._where()}: no such container")

        # A new object (the common case, a backup) takes one request: PUT only if absent.
        # An existing one is looked at first, so an SLO mover wrote there loses its segments
        # once the new object is in place.
        old: list[str] = []
        answer = put({"If-None-Match": "*"})
        if answer is None:
            old = self._old_mover_segments(key)
            answer = put({})
        etag = str(answer).strip('"')
        if etag != md5:
            raise VerificationFailed(f"{what}: sent md5 {md5}, Swift stored md5 {etag}")
        for name in old:
            container, _, obj = name.lstrip("/").partition("/")
            with contextlib.suppress(MoverError):
                self._delete_segment(container, obj)
        return ObjectInfo(key=key, size=size, etag=etag, checksum=f"md5:{etag}")

    def delete(self, key: str) -> None:
        what = self._where(key)
        headers = self._call(
            lambda c: c.head_object(self.container, key, query_string="multipart-manifest=get"),
            what,
        )
        if _is_slo(headers):
            # The manifest and every segment it names, in one request (as ``swift delete``).
            # Swift answers 200 with a report in the body even when something failed, so the
            # manifest's absence is checked after; a segment left over only wastes space.
            self._call(
                lambda c: c.delete_object(
                    self.container,
                    key,
                    query_string="multipart-manifest=delete",
                    headers={"Accept": "application/json"},
                ),
                what,
            )
            try:
                # X-Newest: a replica that missed the delete must not answer for the others.
                self._call(
                    lambda c: c.head_object(self.container, key, headers={"X-Newest": "true"}),
                    what,
                )
            except ObjectNotFound:
                return
            raise ChunkFailed(f"{what}: Swift kept the object after deleting it", retryable=True)
        self._call(lambda c: c.delete_object(self.container, key), what)

    def _old_mover_segments(self, key: str) -> list[str]:
        """Segments of the current object ``key`` that an earlier mover upload of ``key`` wrote.

        Only those are deleted after an overwrite: segments elsewhere may be shared with other
        manifests (a manifest copy), which mover must not break.
        """
        manifest = self._manifest(key)
        prefix = f"/{self.segments_container}/{key}/mover-"
        return [s["name"] for s in manifest if str(s.get("name", "")).startswith(prefix)]

    def _manifest(self, key: str) -> list[dict[str, Any]]:
        """The segment list of SLO ``key``; empty if ``key`` is absent or not an SLO.

        A HEAD comes first: a GET of a plain object would fetch its whole body, and only an
        SLO's manifest (at most 8 MiB in Swift) is worth reading into memory.
        """
        where, query = self._where(key), "multipart-manifest=get"
        try:
            head = self._call(
                lambda c: c.head_object(self.container, key, query_string=query), where
            )
            if not _is_slo(head):
                return []
            headers, body = self._call(
                lambda c: c.get_object(self.container, key, query_string=query), where
            )
        except ObjectNotFound:
            return []
        if not _is_slo(headers):
            return []
        try:
            segments = json.loads(body)
        except ValueError:
            return []
        return [s for s in segments if isinstance(s, dict) and "name" in s]

    def _delete_segment(self, container: str, name: str) -> None:
        with contextlib.suppress(ObjectNotFound):
            self._call(lambda c: c.delete_object(container, name), self._where(name, container))

    # -- server-side copy -------------------------------------------------------------------

    def can_copy_from(self, source: StoreProvider) -> bool:
        """True for another container of the same account (same auth URL, user, project)."""
        creds = getattr(source, "creds", None)
        return (
            getattr(source, "scheme", None) == self.scheme
            and isinstance(creds, _Credentials)
            and creds.identity() == self.creds.identity()
        )

    def copy_server_side(
        self, source: StoreProvider, src_key: str, dst_key: str, size: int
    ) -> ObjectInfo:
        """Copy within the account, no byte through mover.

        Up to Swift's largest plain object (5 GiB, option ``max_copy_bytes``) this is one COPY.
        An SLO is copied as its data into a plain object (Swift's ``copy`` middleware stands
        left of ``slo``), so the copy shares no segment with the source and outlives it. A
        larger object becomes an SLO whose segments are ranged server-side copies of the
        source (``PUT`` with ``X-Copy-From`` and ``Range``, Swift's UploadPartCopy), made in
        parallel and committed like any upload. If the destination was an SLO written by
        mover, its old segments are deleted once the copy is in place.
        """
        if not self.can_copy_from(source):
            raise CannotHandle(f"{self.describe()} cannot copy from {source.describe()} by itself")
        assert isinstance(source, SwiftProvider)
        limit = int(self.options.get("max_copy_bytes", MAX_SEGMENT_BYTES))
        if size > limit:
            return self._copy_in_segments(source, src_key, dst_key, size, limit)
        old = self._old_mover_segments(dst_key)
        destination = f"/{self.container}/{dst_key}"
        what = f"copying {source._where(src_key)} to {self._where(dst_key)}"
        self._call(
            lambda c: c.copy_object(source.container, src_key, destination=destination),
            what,
            not_found=f"{source._where(src_key)} or container {self.container}: not found",
        )
        info = self._stat(dst_key, newest=True)
        if info.size != size:
            raise VerificationFailed(
                f"{what}: the copy holds {info.size} bytes, the source {size}", retryable=True
            )
        for name in old:
            container, _, obj = name.lstrip("/").partition("/")
            with contextlib.suppress(MoverError):
                self._delete_segment(container, obj)
        return info

    def _copy_in_segments(
        self, source: SwiftProvider, src_key: str, dst_key: str, size: int, limit: int
    ) -> ObjectInfo:
        limits = self._caps.chunk_writer
        assert limits is not None
        part = int(self.options.get("copy_segment_bytes", 0)) or max(
            COPY_SEGMENT_BYTES, -(-size // limits.max_parts)
        )
        part = min(part, limit, limits.max_part_bytes)
        ranges = [(i, off, min(part, size - off)) for i, off in enumerate(range(0, size, part))]
        if len(ranges) > limits.max_parts:
            raise UsageError(
                f"{source._where(src_key)}: {size} bytes need {len(ranges)} segments, "
                f"more than one SLO holds ({limits.max_parts})"
            )
        writer = self.open_writer(dst_key, size)
        assert isinstance(writer, SwiftWriter)
        copy_from = quote(f"/{source.container}/{src_key}")

        def copy_range(item: tuple[int, int, int]) -> PartReceipt:
            index, offset, length = item
            name = writer.segment_name(index)
            headers = {
                "X-Copy-From": copy_from,
                "Range": f"bytes={offset}-{offset + length - 1}",
                **writer.staging_headers(),
            }
            etag = self._call(
                lambda c: c.put_object(self.segments_container, name, None, headers=headers),
                f"copying bytes {offset}-{offset + length - 1} of {source._where(src_key)}",
            ).strip('"')
            return PartReceipt(index, offset, length, "", {"segment": name, "etag": etag})

        try:
            with ThreadPoolExecutor(max_workers=min(COPY_STREAMS, len(ranges))) as pool:
                receipts = list(pool.map(copy_range, ranges))
            return writer.commit(receipts, size)
        except BaseException:
            with contextlib.suppress(MoverError):
                writer.abort()
            raise


def _read_body_into(body: Any, buf: memoryview) -> int:
    """Fill ``buf`` from a GET's body; the count (short only if the body ended).

    The socket's bytes land in ``buf`` itself (``http.client``'s ``readinto`` under requests
    and urllib3: the bytes as stored, no decoding, no temporary piece); a body without that
    path is read in pieces of :data:`READ_PIECE_BYTES`, each copied once.
    """
    raw = getattr(getattr(body, "resp", None), "raw", None)
    fp = getattr(raw, "_fp", None)
    got = 0
    want = len(buf)
    if isinstance(fp, http.client.HTTPResponse):
        while got < want:
            n = fp.readinto(buf[got:])
            if not n:
                break
            got += n
        return got
    while got < want:
        piece = body.read(min(READ_PIECE_BYTES, want - got))
        if not piece:
            break
        n = len(piece)
        buf[got : got + n] = piece
        got += n
    return got


def _release(body: Any) -> bool:
    """Give a fully read body's connection back to the pool (closing it would make the next
    ranged GET of this thread open a new connection); False when that cannot be done."""
    raw = getattr(getattr(body, "resp", None), "raw", None)
    fp = getattr(raw, "_fp", None)
    if not isinstance(fp, http.client.HTTPResponse) or not fp.isclosed():
        return False
    release = getattr(raw, "release_conn", None)
    if release is None:
        return False
    release()
    return True


class _BodyStream(io.RawIOBase):
    """A GET's body as a raw stream whose errors are mover errors; closes its connection."""

    def __init__(self, provider: SwiftProvider, body: Any, conn: Any, what: str) -> None:
        self._provider = provider
        self._body = body
        self._conn = conn
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            piece = self._body.read(len(view))
        except _NETWORK_ERRORS as exc:
            raise _network_error(exc, _endpoint_of(self._conn.url or ""), self._what) from None
        n = len(piece)
        view[:n] = piece
        return n

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
            with contextlib.suppress(Exception):
                self._conn.close()
        super().close()


class _MemoryReader:
    """A file-like view of a memoryview, so a part is sent without copying it to bytes."""

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._pos = 0

    def read(self, size: int = -1) -> memoryview:
        end = (
            len(self._data) if size is None or size < 0 else min(len(self._data), self._pos + size)
        )
        piece = self._data[self._pos : end]
        self._pos = end
        return piece


class SwiftWriter(ChunkWriter):
    """Parts are segments; commit writes the SLO manifest (see the module docstring)."""

    def __init__(
        self, provider: SwiftProvider, key: str, upload_id: str, segments_container: str
    ) -> None:
        self.provider = provider
        self.key = key
        self.upload_id = upload_id
        self.segments_container = segments_container

    @property
    def prefix(self) -> str:
        """Every segment of this upload, and nothing else, starts with this."""
        return f"{self.key}/{self.upload_id}/"

    def segment_name(self, part: int) -> str:
        return f"{self.prefix}{part:08d}"

    def staging_headers(self) -> dict[str, str]:
        """Headers of a staged segment: it expires unless its upload is committed."""
        expiry = self.provider.segment_expiry_s
        return {"X-Delete-After": str(expiry)} if expiry > 0 else {}

    def write_part(self, part: int, offset: int, data: memoryview, expected: Digest) -> PartReceipt:
        size = len(data)
        # A digest Swift cannot check is checked here; Swift checks md5.
        what = f"part {part} of {self.provider._where(self.key)}"
        md5 = digest_for_store(data, expected, "md5", what).hex
        if size == 0:
            # Nothing to stage: an empty part adds no segment (SLO refuses empty ones but the
            # last), and the md5 of no bytes needs no server to confirm it.
            if md5 != EMPTY_MD5:
                raise VerificationFailed(f"part {part}: empty, but read as {expected}")
            return PartReceipt(part, offset, 0, str(expected), {"segment": None, "etag": md5})
        name = self.segment_name(part)
        where = self.provider._where(name, self.segments_container)

        def put(conn: Any) -> str:
            return str(
                conn.put_object(
                    self.segments_container,
                    name,
                    _MemoryReader(data),
                    content_length=size,
                    etag=md5,
                    content_type="application/octet-stream",
                    headers=self.staging_headers(),
                )
            )

        try:
            etag = self.provider._call(
                put,
                where,
                not_found=f"{where}: the segments container vanished during the upload",
            ).strip('"')
        except ObjectNotFound:
            self.provider._forget_container(self.segments_container)
            raise
        if etag != md5:
            raise VerificationFailed(
                f"{where}: sent md5 {md5}, Swift stored md5 {etag}", retryable=True
            )
        # Swift computed ``etag`` from what it stored, and it equals the md5 of what was read
        # (checked above when ``expected`` is not md5 itself): the part is confirmed.
        return PartReceipt(part, offset, size, str(expected), {"segment": name, "etag": etag})

    def commit(self, receipts: list[PartReceipt], size: int) -> ObjectInfo:
        p = self.provider
        where = p._where(self.key)
        ordered = check_receipts(receipts, size, where)
        segments = [r for r in ordered if r.size > 0]
        old = p._old_mover_segments(self.key)
        plain = not segments or (len(segments) == 1 and size <= p.plain_max_bytes)
        if not segments:
            p._call(
                lambda c: c.put_object(
                    p.container, self.key, b"", content_length=0, etag=EMPTY_MD5
                ),
                where,
                not_found=f"{p._where()}: no such container",
            )
            etag = EMPTY_MD5
        elif plain:
            etag = self._copy_segment_to_object(segments[0])
        else:
            etag = self._put_manifest(segments)
            self._keep_segments(segments)
        mine = set() if plain else {self._path(r) for r in segments}
        for name in old:
            if name not in mine:
                container, _, obj = name.lstrip("/").partition("/")
                # A leftover segment wastes space but breaks nothing.
                with contextlib.suppress(MoverError):
                    p._delete_segment(container, obj)
        if plain:
            # The object holds its own bytes now; its staging segment is not needed.
            with contextlib.suppress(MoverError):
                for r in segments:
                    p._delete_segment(self.segments_container, r.extra["segment"])
        # No HEAD to confirm: Swift itself checked what the object is made of (the copy's md5,
        # or every segment's md5 and size in the manifest), and its ETag was checked above.
        return ObjectInfo(
            key=self.key, size=size, etag=etag, checksum=f"md5:{etag}" if plain else None
        )

    def _path(self, receipt: PartReceipt) -> str:
        """The manifest path of a part's segment: ``/<segments container>/<segment>``."""
        return f"/{self.segments_container}/{receipt.extra['segment']}"

    def _copy_segment_to_object(self, receipt: PartReceipt) -> str:
        """Make a one-part object a plain object: a server-side copy of its one segment.

        Swift computes the copy's ETag from the bytes it wrote: it must be the segment's md5,
        which is the md5 mover read, so the whole object is verified by the store. A commit
        repeated after an earlier one copied the object and deleted the segment (its committer
        died before recording it, and another took the commit over) finds the object in place.
        """
        p = self.provider
        where = p._where(self.key)
        # Fresh metadata: the object must not inherit its staging segment's expiry.
        headers = {"X-Copy-From": quote(self._path(receipt)), "X-Fresh-Metadata": "true"}
        try:
            etag = p._call(
                lambda c: c.put_object(p.container, self.key, None, headers=headers),
                where,
                not_found=f"{where}: its segment or the container {p.container} vanished",
            ).strip('"')
        except ObjectNotFound:
            if not self._committed_before(receipt):
                raise
            return str(receipt.extra["etag"])
        if etag != receipt.extra["etag"]:
            raise VerificationFailed(
                f"{where}: Swift copied a segment of md5 {receipt.extra['etag']} into an object "
                f"of md5 {etag}",
                retryable=True,
            )
        return etag

    def _committed_before(self, receipt: PartReceipt) -> bool:
        """Whether the object already holds exactly this one part (md5 and size)."""
        try:
            info = self.provider._stat(self.key, newest=True)
        except ObjectNotFound:
            return False
        return info.etag == receipt.extra["etag"] and info.size == receipt.size

    def _put_manifest(self, segments: list[PartReceipt]) -> str:
        """PUT the SLO manifest; Swift checks every segment's ETag and size against it."""
        p = self.provider
        where = p._where(self.key)
        body = json.dumps(
            [
                {"path": self._path(r), "etag": r.extra["etag"], "size_bytes": r.size}
                for r in segments
            ]
        )

        def put_manifest(conn: Any) -> str:
            try:
                return str(
                    conn.put_object(
                        p.container,
                        self.key,
                        body,
                        query_string="multipart-manifest=put",
                        headers={"Accept": "application/json"},
                    )
                )
            except swift_client.ClientException as exc:
                if exc.http_status != 400:
                    raise
                detail = (exc.http_response_content or b"")[:300]
                raise VerificationFailed(
                    f"{where}: Swift refused the manifest, a segment is missing or differs "
                    f"from what was sent: {detail!r}"
                ) from None

        etag = p._call(put_manifest, where, not_found=f"{p._where()}: no such container")
        want = hashlib.md5("".join(r.extra["etag"] for r in segments).encode()).hexdigest()
        if etag.strip('"') != want:
            raise VerificationFailed(
                f"{where}: the manifest's ETag {etag} is not the md5 of its segments' ETags"
            )
        return want

    def _keep_segments(self, segments: list[PartReceipt]) -> None:
        """Remove the staging expiry of every segment the committed manifest names (in
        parallel), so that the object never expires. Until this is done the commit is not:
        a failure raises (retryable), and committing again repeats it."""
        p = self.provider
        if p.segment_expiry_s <= 0:
            return
        headers = {"X-Remove-Delete-At": "1", "Content-Type": "application/octet-stream"}

        def keep(receipt: PartReceipt) -> None:
            name = receipt.extra["segment"]
            retry.call(  # a commit is not retried as a whole: retry each request here
                lambda: p._call(
                    lambda c: c.post_object(self.segments_container, name, headers=headers),
                    p._where(name, self.segments_container),
                )
            )

        with ThreadPoolExecutor(max_workers=min(UNEXPIRE_STREAMS, len(segments))) as pool:
            list(pool.map(keep, segments))

    def abort(self) -> None:
        p = self.provider
        manifest = p._manifest(self.key)
        if any(f"/{self.prefix}" in str(s.get("name", "")) for s in manifest):
            return  # committed: these segments are the object now, and abort never touches it
        self._delete_own_segments()

    def _delete_own_segments(self) -> None:
        p = self.provider
        container = self.segments_container
        marker = ""
        while True:
            try:
                _, page = p._call(
                    lambda c, m=marker: c.get_container(container, prefix=self.prefix, marker=m),
                    p._where(self.prefix, container),
                )
            except ObjectNotFound:
                return
            if not page:
                return
            for entry in page:
                p._delete_segment(container, entry["name"])
            marker = page[-1]["name"]

    def state(self) -> dict[str, Any]:
        return {"upload_id": self.upload_id, "segments_container": self.segments_container}


# --- helpers -------------------------------------------------------------------------------


def _is_slo(headers: dict[str, str]) -> bool:
    return str(headers.get("x-static-large-object", "")).lower() == "true"


def _info_from_headers(key: str, headers: dict[str, str]) -> ObjectInfo:
    etag = (headers.get("etag") or "").strip('"') or None
    plain = not _is_slo(headers) and "x-object-manifest" not in headers
    mtime: float | None = None
    if headers.get("x-timestamp"):
        try:
            mtime = float(headers["x-timestamp"])
        except ValueError:
            mtime = None
    if mtime is None and headers.get("last-modified"):
        try:
            mtime = httpdate.parse(headers["last-modified"]).timestamp()
        except (TypeError, ValueError):
            mtime = None
    return ObjectInfo(
        key=key,
        size=int(headers.get("content-length", 0)),
        etag=etag,
        # A plain object's ETag is the md5 of its bytes; an SLO's is the md5 of its segments'.
        checksum=f"md5:{etag}" if plain and etag else None,
        mtime=mtime,
    )


def _plain_check(size: int | None, etag: str | None) -> SourceCheck:
    """A plain object: its ETag is the md5 of its bytes."""
    return SourceCheck(
        size=size,
        version=etag,
        pinned=bool(etag),
        algorithm="md5" if etag else "",
        combine=COMBINE_ONE if etag else "",
        whole=etag or "",
        what="the Swift ETag (md5 of the object)",
    )


def _changed(what: str, etag: str | None) -> SourceChanged:
    return SourceChanged(
        f"source changed during the copy: {what} is no longer the version the job was "
        f"prepared from (ETag {etag}); nothing was committed: run the copy again"
    )


def _listing_time(text: str | None) -> float | None:
    if not text:
        return None
    from datetime import UTC, datetime

    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
