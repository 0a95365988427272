"""The S3 store: AWS S3 and S3-compatible servers (SeaweedFS, MinIO, Ceph RGW), ``s3://BUCKET/KEY``.

Reads are ranged GETs read straight into the caller's buffer: the socket fills the chunk buffer
with no intermediate ``bytes`` (about twice the speed of ``StreamingBody.read`` here, see
shared/TEST-SERVERS.md). Writes are multipart uploads: the upload is created when the transfer is
planned, every chunk is one ``UploadPart`` carrying ``x-amz-checksum-crc32c`` of the bytes mover
read, so the *server* refuses a part that arrived different (``BadDigest``), and the object
becomes visible only at ``CompleteMultipartUpload``, atomically; until then an existing object
under the key is untouched, and abort removes the upload and its parts.

Why multipart even for a small object: a chunk may run on another worker than the commit, so
its bytes must be stored somewhere before the commit; a one-part multipart upload (a last part
may be smaller than 5 MiB, so one part of 1 B to 5 GiB is valid) stores them on the server
without making them visible. Writing the object with ``PutObject`` from the chunk would expose
it before commit, and an abort could then delete a copy someone already read. The one exception
is an empty object, which has no bytes to carry: its empty part is skipped, and the commit writes
it with ``PutObject`` of zero bytes (and aborts the empty upload), which is atomic too.

Configuration comes from boto3's standard chain (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``,
``AWS_PROFILE``, ``~/.aws``, instance roles), or from a configured store's options::

    [stores.backup-east]
    url = "s3://backups/templates/"
    endpoint_url = "http://127.0.0.1:8333"   # an S3-compatible server (path-style by default)
    region = "us-east-1"
    profile = "backup"                      # a profile in ~/.aws/config
    credentials_env = "BACKUP_EAST"         # BACKUP_EAST_ACCESS_KEY_ID / _SECRET_ACCESS_KEY
    addressing_style = "path"               # or "virtual"; "auto" is boto3's choice
    retry_mode = "standard"                 # botocore's modes: "standard" or "adaptive"
    max_attempts = 3                        # botocore's attempts per request, the first included
    connect_timeout = 10                    # seconds
    read_timeout = 60                       # seconds
    max_pool_connections = 64               # connections shared by every stream (at least 32)
    payload_signing_enabled = false         # skip SigV4's sha256 of bodies over plain HTTP
    copy_cutoff_bytes = 5368709120          # server-side copies above: UploadPartCopy parts
    copy_part_bytes = 536870912             # part size of those (raised to fit 10,000 parts)
    copy_streams = 4                        # part copies in parallel
    engine = "http"                         # or "awscrt" (small requests), "botocore" (all)

Where the endpoint is known without boto3 (``endpoint_url`` or ``AWS_ENDPOINT_URL``, path-style)
every request but server-side copies goes on the standard library
(:mod:`mover.providers.s3_http`: SigV4 signed in Python, ``http.client``, bodies sent from and
read into the caller's buffers): GETs and parts of any size, PutObject, HEAD, HeadBucket,
listings, multipart control, deletes. boto3 costs 0.3 s of CPU to import and set up, awscrt
40 ms; this client a few milliseconds, and per request less CPU than awscrt when many small
objects move. So a copy between files and S3 imports neither. With ``engine = "awscrt"`` the
small requests go on awscrt (:mod:`mover.providers.s3_crt`) instead. CopyObject and
UploadPartCopy, AWS itself (virtual-hosted buckets, boto3's endpoint rules), and ``engine =
"botocore"`` (or ``MOVER_S3_ENGINE=botocore``) use boto3. The lean engines read ``max_attempts``,
``connect_timeout`` and ``read_timeout``; credentials come from the same chain (static keys read
from the environment or the profile files, anything more through awscrt's providers).

Retries of single requests are the engine's (botocore's retry modes; the lean engines retry
transient failures, ``max_attempts`` in all); mover's chunk retry (:mod:`mover.retry`) sits
above them and re-runs a whole chunk only for errors this module marks ``retryable`` after the
engine gave up. One client per store and engine, shared by every thread, with connections
enough for every stream.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from mover.digests import Digest, digest
from mover.errors import (
    AccessDenied,
    BadLocation,
    ChunkFailed,
    ConfigError,
    MoverError,
    NotWritable,
    ObjectNotFound,
    SourceChanged,
    UsageError,
    VerificationFailed,
)
from mover.location import Location
from mover.provider import (
    COMBINE_CRC,
    COMBINE_ONE,
    COMBINE_RAW,
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
from mover.providers import s3_crt, s3_http

T = TypeVar("T")
log = logging.getLogger("mover.s3")

#: S3's part limits: every part but the last at least 5 MiB, at most 5 GiB, 10,000 parts.
MIN_PART_BYTES = 5 * MiB
MAX_PART_BYTES = 5 * GiB
#: How long a bucket seen to exist is trusted before it is checked again (seconds).
BUCKET_CHECK_TTL_S = 60.0
MAX_PARTS = 10_000
#: CopyObject copies at most 5 GiB in one request; larger objects need UploadPartCopy.
MAX_COPY_OBJECT_BYTES = 5 * GiB
#: Part size for server-side multipart copies: large, since no byte passes through mover.
DEFAULT_COPY_PART_BYTES = 512 * MiB
#: Parallel UploadPartCopy requests of one server-side copy.
DEFAULT_COPY_STREAMS = 4
#: Connections in the client's pool: at least one per stream, with room for HEADs and lists.
MIN_POOL_CONNECTIONS = 32
#: Seconds to wait for a TCP connection: botocore's 60 s default hides an unreachable endpoint.
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 60.0
#: botocore attempts per request (the first included) when neither options nor env say.
DEFAULT_MAX_ATTEMPTS = 3

#: Bucket names boto3 accepts (AWS is stricter; S3-compatible servers may be looser).
_BUCKET = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
#: The namespace of S3's XML documents.
_S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
#: crc32c of zero bytes, for the empty object.
_EMPTY_CRC32C = digest("crc32c", b"")

_DENIED_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "InvalidSecurity",
    "403",
    "401",
}
_DIGEST_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404", "NoSuchVersion"}
#: Checksums an object may carry in HEAD, mapped to mover's digest names.
_CHECKSUM_FIELDS = (("ChecksumCRC32C", "crc32c"), ("ChecksumSHA256", "sha256"))
#: Every checksum S3 may hold for an object or a part, cheapest first (a source check uses the
#: first one present: CRCs cost a few per cent of a core, md5 and sha most of one).
_SOURCE_CHECKSUMS = (
    ("ChecksumCRC32C", "crc32c"),
    ("ChecksumCRC64NVME", "crc64nvme"),
    ("ChecksumCRC32", "crc32"),
    ("ChecksumSHA1", "sha1"),
    ("ChecksumSHA256", "sha256"),
)
#: Single-part objects up to this size are checked by their ETag (the md5 of their bytes) with
#: no request at all; a larger one gets one HEAD, whose full-object CRC (where the server keeps
#: one) lets its chunks be read in parallel rather than in order.
ETAG_ONLY_MAX_BYTES = 64 * MiB
#: Part HEADs in flight when the parts' sizes must be asked one by one.
PART_HEAD_STREAMS = 8
_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")
_CRC_NAMES = ("crc32c", "crc32", "crc64nvme")
_MULTIPART_ETAG = re.compile(r"^([0-9a-f]{32})-(\d+)$")
_CRC32C_HEADER = "x-amz-checksum-crc32c"
_CHECKSUM_MODE = ("x-amz-checksum-mode", "ENABLED")
#: Response headers of a HEAD, as the fields botocore would name them.
_HEAD_HEADERS = (
    ("content-length", "ContentLength"),
    ("etag", "ETag"),
    ("x-amz-checksum-crc32c", "ChecksumCRC32C"),
    ("x-amz-checksum-crc32", "ChecksumCRC32"),
    ("x-amz-checksum-crc64nvme", "ChecksumCRC64NVME"),
    ("x-amz-checksum-sha1", "ChecksumSHA1"),
    ("x-amz-checksum-sha256", "ChecksumSHA256"),
    ("x-amz-checksum-type", "ChecksumType"),
    ("x-amz-server-side-encryption", "ServerSideEncryption"),
    ("x-amz-server-side-encryption-customer-algorithm", "SSECustomerAlgorithm"),
)


class S3Provider(StoreProvider):
    """One bucket on one S3 endpoint. Options: see the module docstring."""

    scheme = "s3"
    examples = ("s3://bucket/templates/centos.qcow2", "s3://backups/snapshots/")

    _CAPS = Capabilities(
        ranged_read=True,
        chunk_writer=PartLimits(
            min_part_bytes=MIN_PART_BYTES,
            max_part_bytes=MAX_PART_BYTES,
            max_parts=MAX_PARTS,
            preferred_part_bytes=64 * MiB,
            # Uploads are bound by the server; 4 streams of 64 MiB did best here.
            single_put_below_bytes=8 * MiB,
        ),
        streaming_write=True,
        # PutObject is atomic and carries the same server-verified crc32c as a part: objects
        # of one chunk take one request instead of three (create, part, complete).
        atomic_put_max_bytes=MAX_PART_BYTES,
        server_side_copy=True,
        checksum_algorithms=("crc32c",),
    )

    def __init__(self, location: Location, options: dict[str, Any] | None = None) -> None:
        super().__init__(location, options)
        self.bucket = location.store
        self._client: Any = None
        self._endpoint: str | None = None
        self._lock = threading.Lock()
        #: monotonic time until which the bucket is known to exist (one HeadBucket per job,
        #: not per object, for recursive copies of many small objects)
        self._bucket_seen_until = 0.0
        #: the lean engine's settings (None: every request on botocore); computed once
        self._lean_settings: s3_crt.Settings | bool | None = False
        self._engine: s3_crt.Lean | None = None
        self._http: s3_http.Client | None = None

    @classmethod
    def open(cls, location: Location, options: dict[str, Any] | None = None) -> S3Provider:
        bucket = location.store
        if ":" in bucket:
            raise BadLocation(
                f"s3 URLs are s3://BUCKET/KEY, not {bucket!r}: give the server as endpoint_url "
                "in a configured store or as AWS_ENDPOINT_URL"
            )
        if not _BUCKET.match(bucket):
            raise BadLocation(f"{bucket!r} is not a valid S3 bucket name")
        return cls(location, options)

    @property
    def capabilities(self) -> Capabilities:
        return self._CAPS

    def describe(self) -> str:
        name = f"store {self.location.name!r} " if self.location.name else ""
        return f"{name}s3://{self.bucket} at {self.endpoint}"

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # -- the client -----------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The endpoint URL this store talks to, for messages; creates no connection."""
        if self._endpoint is None and self._settings() is not None:
            self._endpoint = self._settings().endpoint_url  # type: ignore[union-attr]
        if self._endpoint is None:
            try:
                self._endpoint = str(self.client.meta.endpoint_url)
            except MoverError:
                return str(self.options.get("endpoint_url") or _env_endpoint() or "AWS S3")
        return self._endpoint

    @property
    def client(self) -> Any:
        """This store's boto3 client, created on first use and shared by every thread."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _settings(self) -> s3_crt.Settings | None:
        """The lean engines' settings (None: every request on botocore), computed once."""
        if self._lean_settings is False:
            o = self.options
            attempts = o.get("max_attempts") or os.environ.get("AWS_MAX_ATTEMPTS")
            self._lean_settings = s3_crt.settings(
                o,
                int(attempts or DEFAULT_MAX_ATTEMPTS),
                float(o.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT_S),
                float(o.get("read_timeout") or DEFAULT_READ_TIMEOUT_S),
            )
        if self._lean_settings is None or self._lean_settings is True:
            return None
        return self._lean_settings  # type: ignore[return-value]

    def _plain(self) -> s3_http.Client | None:
        """The standard-library client (:mod:`mover.providers.s3_http`), or None when this
        store's requests all stay on botocore."""
        s = self._settings()
        if s is None:
            return None
        if self._http is None:
            self._http = s3_http.client_for(s)
        return self._http

    def _lean(self) -> s3_crt.Lean | None:
        """The engine for a small request, or None when this store's requests all stay on
        botocore: the standard-library client (:mod:`mover.providers.s3_http`), or the awscrt
        engine (:mod:`mover.providers.s3_crt`) with ``engine = "awscrt"``."""
        if self._engine is not None:
            return self._engine
        plain = self._plain()
        if plain is not None and plain.settings.engine == "awscrt":
            self._engine = s3_crt.engine_for(plain.settings)
            return self._engine
        return plain

    def _small(self, length: int) -> s3_crt.Lean | None:
        """The engine for a request whose body is ``length`` bytes, if it takes it."""
        return self._lean() if length <= s3_crt.MAX_BODY_BYTES else None

    def _credential_source(self) -> tuple[str, ...]:
        """Where the credentials come from, for messages and for ``can_copy_from``; no secret."""
        if self.options.get("credentials_env"):
            return ("env", str(self.options["credentials_env"]))
        if self.options.get("profile"):
            return ("profile", str(self.options["profile"]))
        return ("default",)

    def _where_credentials(self) -> str:
        source = self._credential_source()
        if source[0] == "env":
            return f"credentials from ${source[1]}_ACCESS_KEY_ID / ${source[1]}_SECRET_ACCESS_KEY"
        if source[0] == "profile":
            return f"credentials of profile {source[1]!r}"
        return "credentials from boto3's chain (AWS_ACCESS_KEY_ID..., AWS_PROFILE, ~/.aws)"

    def _make_client(self) -> Any:
        try:
            import boto3  # noqa: F401  (a clear error below when it is missing)
            import botocore.exceptions
            from botocore.config import Config
        except ImportError as exc:  # pragma: no cover - boto3 is a dependency
            raise ConfigError("provider 's3' needs boto3: pip install boto3") from exc
        o = self.options
        try:
            session = _session(o.get("profile") or None)
        except botocore.exceptions.ProfileNotFound as exc:
            raise ConfigError(f"{self._label()}: profile {o.get('profile')!r} not found") from exc
        kwargs: dict[str, Any] = {}
        prefix = o.get("credentials_env")
        if prefix:
            names = [f"{prefix}_ACCESS_KEY_ID", f"{prefix}_SECRET_ACCESS_KEY"]
            missing = [n for n in names if not os.environ.get(n)]
            if missing:
                raise ConfigError(
                    f"{self._label()}: credentials_env = {prefix!r} but {', '.join(missing)} "
                    "is not set in this process's environment"
                )
            kwargs["aws_access_key_id"] = os.environ[names[0]]
            kwargs["aws_secret_access_key"] = os.environ[names[1]]
            token = os.environ.get(f"{prefix}_SESSION_TOKEN")
            if token:
                kwargs["aws_session_token"] = token
        if o.get("endpoint_url"):
            kwargs["endpoint_url"] = str(o["endpoint_url"])
        region = o.get("region") or session.region_name or "us-east-1"
        scoped = session._session.get_scoped_config()  # the profile's settings, no I/O
        retry_mode = o.get("retry_mode") or os.environ.get("AWS_RETRY_MODE")
        retry_mode = retry_mode or scoped.get("retry_mode") or "standard"
        attempts = o.get("max_attempts") or session._session.get_config_variable("max_attempts")
        style = o.get("addressing_style")
        # Over plain HTTP botocore would sign every body with sha256 (most of a core at
        # page-cache speed, and it reads the body in 4 KiB pieces). mover's x-amz-checksum-
        # crc32c header is itself signed and checked by the server, so the body cannot be
        # altered unnoticed without it; over HTTPS botocore signs no payload anyway. A store
        # may turn payload signing back on with payload_signing_enabled = true.
        signing = {"payload_signing_enabled": _flag(o.get("payload_signing_enabled", False))}

        def build(addressing: str) -> Any:
            config = Config(
                region_name=region,
                retries={"mode": retry_mode, "max_attempts": int(attempts or DEFAULT_MAX_ATTEMPTS)},
                max_pool_connections=max(
                    MIN_POOL_CONNECTIONS, int(o.get("max_pool_connections") or 0)
                ),
                connect_timeout=float(o.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT_S),
                read_timeout=float(o.get("read_timeout") or DEFAULT_READ_TIMEOUT_S),
                tcp_keepalive=True,
                s3={"addressing_style": addressing, **signing},
                # mover sends its own per-part crc32c and checks ranged reads by length; the
                # SDK's default whole-body CRCs would cost client CPU for nothing (measured in
                # shared/TEST-SERVERS.md: 139 -> 167 MiB/s up on 2 cores).
                request_checksum_calculation=o.get("request_checksum_calculation")
                or "when_required",
                response_checksum_validation=o.get("response_checksum_validation")
                or "when_required",
            )
            try:
                with _SESSION_LOCK:  # a boto3 Session is not safe for concurrent client builds
                    return session.client("s3", config=config, **kwargs)
            except (ValueError, botocore.exceptions.BotoCoreError) as exc:
                raise ConfigError(
                    f"{self._label()}: cannot configure the S3 client: {exc}"
                ) from exc

        # An S3-compatible server (an endpoint that is not AWS's) gets path-style addressing
        # unless told otherwise: its buckets are rarely DNS names under its host.
        client = build(style or ("path" if kwargs.get("endpoint_url") else "auto"))
        if not style and not kwargs.get("endpoint_url") and not _is_aws(client.meta.endpoint_url):
            client = build("path")  # the endpoint came from AWS_ENDPOINT_URL or a profile
        return client

    def _label(self) -> str:
        return f"store {self.location.name!r}" if self.location.name else f"s3://{self.bucket}"

    # -- errors ---------------------------------------------------------------------------------

    def _error(self, exc: Exception, action: str, key: str | None = None) -> MoverError:
        """Translate a botocore or socket error into the mover error a user can act on.

        Messages name the store, the endpoint and the key, never a credential; server messages
        of refused requests are left out (an AWS SignatureDoesNotMatch quotes the request).
        """
        what = self._url(key) if key is not None else f"s3://{self.bucket}"
        where = f"{what} at {self.endpoint}"
        if self.location.name:
            where += f" (store {self.location.name!r})"
        if isinstance(exc, MoverError):
            return exc
        if isinstance(exc, s3_crt.EngineError):
            return self._engine_error(exc, action, what, where)
        import botocore.exceptions as bex

        if isinstance(exc, bex.ClientError):
            err = exc.response.get("Error", {}) or {}
            code = str(err.get("Code") or "")
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            message = str(err.get("Message") or "").strip()
            return self._answer_error(code, status, message, action, where)
        if isinstance(exc, (bex.NoCredentialsError, bex.PartialCredentialsError)):
            return self._no_credentials(what)
        if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectTimeoutError)):
            return self._unreachable(action, what)
        if isinstance(exc, bex.ParamValidationError):
            return UsageError(f"{where}: {action}: {exc}")
        import http.client  # botocore's path only (urllib3 has it loaded)

        if isinstance(exc, (bex.BotoCoreError, OSError, http.client.HTTPException)):
            return ChunkFailed(
                f"{where}: {action} failed: {type(exc).__name__}: {exc}", retryable=True
            )
        return ChunkFailed(f"{where}: {action} failed: {type(exc).__name__}: {exc}")

    def _engine_error(
        self, exc: s3_crt.EngineError, action: str, what: str, where: str
    ) -> MoverError:
        """The lean engine's failure, classified by the same rules as botocore's."""
        if exc.status:
            return self._answer_error(exc.code, exc.status, exc.message, action, where)
        if "CREDENTIALS" in exc.code:
            return self._no_credentials(what)
        if exc.connect:
            return self._unreachable(action, what)
        return ChunkFailed(f"{where}: {action} failed: {exc.code}: {exc.message}", retryable=True)

    def _no_credentials(self, what: str) -> MoverError:
        return AccessDenied(
            f"{what}: no usable credentials for {self.endpoint}; set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or credentials_env"
        )

    def _unreachable(self, action: str, what: str) -> MoverError:
        return ChunkFailed(
            f"cannot reach the S3 endpoint {self.endpoint} ({action} {what}): "
            "is the server up and endpoint_url / AWS_ENDPOINT_URL right?",
            retryable=True,
        )

    def _answer_error(
        self, code: str, status: int, message: str, action: str, where: str
    ) -> MoverError:
        """An S3 error answer (its ``Code`` and HTTP status) as the mover error to act on."""
        if code == "NoSuchBucket":
            return ObjectNotFound(f"bucket {self.bucket!r} does not exist at {self.endpoint}")
        if code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchUpload"):
            return ObjectNotFound(f"{where}: no such object")
        if code in _DENIED_CODES or status in (401, 403):
            return AccessDenied(
                f"{where}: {action} refused ({code or status}); check the "
                f"{self._where_credentials()} and their permissions"
            )
        if code == "NoSuchUpload":
            return ChunkFailed(
                f"{where}: the multipart upload no longer exists (aborted by another "
                "process, or expired by a lifecycle rule); start the copy again",
                retryable=False,
            )
        if code in ("PreconditionFailed", "412") or status == 412:
            return SourceChanged(
                f"source changed during the copy: {where} is no longer the version the job "
                f"was prepared from ({action}: its ETag no longer matches); nothing was "
                "committed: run the copy again"
            )
        if code in _DIGEST_CODES:
            return VerificationFailed(
                f"{where}: the server refused the bytes of {action}: their checksum differs "
                f"from the one mover read ({code})",
                retryable=True,
            )
        retryable = s3_http.is_transient(status, code)
        detail = f"{code}: {message}" if message else code or f"HTTP {status}"
        return ChunkFailed(f"{where}: {action} failed: {detail}", retryable=retryable)

    def _call(self, action: str, key: str | None, fn: Callable[[], T]) -> T:
        """Run one SDK call and translate what it raises."""
        try:
            return fn()
        except MoverError:
            raise
        except Exception as exc:
            raise self._error(exc, action, key) from exc

    def _bucket_exists(self) -> bool:
        """HeadBucket: True if the bucket exists; raise for any answer but 404."""
        lean = self._lean()
        if lean is not None:
            try:
                lean.request("HeadBucket", "HEAD", self.bucket)
            except s3_crt.EngineError as exc:
                if exc.status == 404:
                    return False
                raise self._error(exc, "checking the bucket") from exc
            self._bucket_seen_until = time.monotonic() + BUCKET_CHECK_TTL_S
            return True
        import botocore.exceptions as bex

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except bex.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            if status == 404 or code in ("NoSuchBucket", "404", "NotFound"):
                return False
            raise self._error(exc, "checking the bucket") from exc
        except Exception as exc:
            raise self._error(exc, "checking the bucket") from exc
        return True

    # -- reading --------------------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo:
        lean = self._lean()
        try:
            if lean is not None:
                answer = lean.request(
                    "HeadObject", "HEAD", self.bucket, key, headers=[_CHECKSUM_MODE]
                )
                return _info(key, _head_fields(answer.headers))
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except Exception as exc:
            error = self._error(exc, "HEAD", key)
            # HEAD has no body, so a 404 does not say whether the bucket or the key is missing.
            if isinstance(error, ObjectNotFound) and not self._bucket_exists():
                raise ObjectNotFound(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint}"
                ) from exc
            raise error from exc
        return _info(key, head)

    def read_into(self, key: str, offset: int, buf: memoryview) -> int:
        return self._read(key, offset, buf, None)

    def read_version_into(self, key: str, version: str, offset: int, buf: memoryview) -> int:
        """A ranged GET with ``If-Match: <ETag>``: a replaced object answers 412."""
        return self._read(key, offset, buf, version)

    def _read(self, key: str, offset: int, buf: memoryview, etag: str | None) -> int:
        want = len(buf)
        if want == 0:
            return 0
        lean = self._small(want) or self._plain()
        if lean is not None:
            return self._read_lean(lean, key, offset, buf, etag)
        import botocore.exceptions as bex

        extra = {"IfMatch": f'"{etag}"'} if etag else {}
        try:
            resp = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={offset}-{offset + want - 1}", **extra
            )
        except bex.ClientError as exc:
            err = exc.response.get("Error", {})
            if err.get("Code") == "InvalidRange" or (
                exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 416
            ):
                if etag:  # the version the job was prepared from reaches past offset
                    raise self._error(_precondition_failed(), f"GET at {offset}", key) from exc
                return 0  # the object ends before offset
            raise self._error(exc, f"GET at {offset}", key) from exc
        except Exception as exc:
            raise self._error(exc, f"GET at {offset}", key) from exc
        body = resp["Body"]
        length = resp.get("ContentLength")
        status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status != 206 and (offset != 0 or (length is not None and length > want)):
            body.close()
            raise ChunkFailed(
                f"{self.describe()}/{key}: the server ignored the Range header (HTTP {status}); "
                "it cannot serve ranged reads",
                retryable=False,
            )
        expect = want if length is None else min(want, int(length))
        got = 0
        try:
            got = _read_body_into(body, buf[:expect])
        except Exception as exc:
            body.close()
            raise self._error(exc, f"reading GET at {offset + got}", key) from exc
        if got < expect:
            body.close()
            raise ChunkFailed(
                f"{self.describe()}/{key}: the connection closed after {got} of {expect} bytes "
                f"at {offset}",
                retryable=True,
            )
        _release_body(body)
        return got

    def _read_lean(
        self, lean: s3_crt.Lean, key: str, offset: int, buf: memoryview, etag: str | None
    ) -> int:
        """A ranged GET on a lean engine, its body landing in ``buf``."""
        want = len(buf)
        headers = [("Range", f"bytes={offset}-{offset + want - 1}")]
        if etag:
            headers.append(("If-Match", f'"{etag}"'))
        try:
            answer = lean.request("GetObject", "GET", self.bucket, key, headers=headers, into=buf)
        except s3_crt.EngineError as exc:
            if exc.status == 416 or exc.code == "InvalidRange":
                if etag:  # the version the job was prepared from reaches past offset
                    raise self._answer_error(
                        "PreconditionFailed", 412, "", f"GET at {offset}", self._url(key)
                    ) from exc
                return 0  # the object ends before offset
            if exc.code == "BodyTooLong":
                raise ChunkFailed(
                    f"{self.describe()}/{key}: the server ignored the Range header; it cannot "
                    "serve ranged reads",
                    retryable=False,
                ) from exc
            raise self._error(exc, f"GET at {offset}", key) from exc
        length = answer.headers.get("content-length")
        if answer.status != 206 and offset != 0:
            raise ChunkFailed(
                f"{self.describe()}/{key}: the server ignored the Range header (HTTP "
                f"{answer.status}); it cannot serve ranged reads",
                retryable=False,
            )
        expect = want if length is None else min(want, int(length))
        if answer.length < expect:
            raise ChunkFailed(
                f"{self.describe()}/{key}: the connection closed after {answer.length} of "
                f"{expect} bytes at {offset}",
                retryable=True,
            )
        return answer.length

    def source_check(self, key: str, info: ObjectInfo, exact: bool = False) -> SourceCheck:
        """The object's own values: a full-object or composite CRC where the server keeps one
        (objects written with checksums; mover writes crc32c), else the ETag (the md5 of a
        single-part object, the md5 of the parts' md5s for a multipart one). Every ranged read
        carries ``If-Match`` with the ETag (``pinned``).

        Requests: none for a single-part object up to ``ETAG_ONLY_MAX_BYTES`` (the ETag from the
        listing or HEAD is enough) or whose full-object CRC ``stat`` saw; one HEAD for a larger
        one; for a multipart object a HEAD and
        the parts' sizes (one GetObjectAttributes per 1,000 parts, or the first and last part's
        HEAD with the others inferred uniform, or every part's HEAD). Store option
        ``etag_md5 = false`` for a server whose ETags are no MD5 (AWS SSE-KMS, SSE-C): then only
        the version is held.
        """
        etag = info.etag
        head: dict[str, Any] | None = None
        if not etag:
            head = self._head_source(key, None)
            etag = _etag(head.get("ETag")) or ""
        size = info.size if info.size is not None else int((head or {}).get("ContentLength", 0))
        plain = SourceCheck(size=size, version=etag or None, pinned=bool(etag))
        if not etag or not _flag(self.options.get("etag_md5", True)):
            return plain
        multipart = _MULTIPART_ETAG.match(etag)
        algorithm, _, value = (info.checksum or "").partition(":")
        if not multipart and algorithm in _CRC_NAMES and value:
            # stat's HEAD saw a full-object CRC: chunks read in parallel combine into it.
            what = f"the object's {algorithm} held by S3"
            return _with(plain, algorithm=algorithm, combine=COMBINE_CRC, whole=value, what=what)
        if not multipart and _MD5_HEX.match(etag) and size <= ETAG_ONLY_MAX_BYTES:
            return self._md5_check(plain, etag)
        if head is None:
            head = self._head_source(key, etag)
        if int(head.get("ContentLength", -1)) != size:
            raise SourceChanged(
                f"source changed during the copy: {self._url(key)} holds "
                f"{head.get('ContentLength')} bytes, {size} when the job was prepared; run the "
                "copy again"
            )
        if head.get("SSECustomerAlgorithm") or str(head.get("ServerSideEncryption", "")).startswith(
            "aws:kms"
        ):
            return plain  # their ETags are no MD5 of the bytes
        crc = _object_checksum(head)
        if crc is not None and crc[2] == "full":
            algorithm, value, _ = crc
            what = f"the object's {algorithm} held by S3"
            return _with(plain, algorithm=algorithm, combine=COMBINE_CRC, whole=value, what=what)
        if not multipart:
            return self._md5_check(plain, etag) if _MD5_HEX.match(etag) else plain
        count = int(multipart.group(2))
        sizes, part_bytes, inferred, sums = self._part_layout(key, etag, count, size, exact)
        layout = {"sizes": sizes, "part_bytes": part_bytes, "inferred": inferred}
        if crc is not None and crc[2] == "composite":
            algorithm, value, _ = crc
            expected = tuple(sums.get(algorithm) or ())
            what = f"the S3 composite {algorithm} of {count} parts"
            return _with(
                plain,
                algorithm=algorithm,
                combine=COMBINE_RAW,
                whole=value,
                expected=expected,
                what=what,
                **layout,
            )
        what = f"the S3 ETag (md5 of {count} parts' md5s)"
        md5s = multipart.group(1)
        return _with(plain, algorithm="md5", combine=COMBINE_RAW, whole=md5s, what=what, **layout)

    def _md5_check(self, plain: SourceCheck, etag: str) -> SourceCheck:
        what = "the S3 ETag (md5 of the object)"
        return _with(plain, algorithm="md5", combine=COMBINE_ONE, whole=etag, what=what)

    def _head_source(self, key: str, etag: str | None, part: int | None = None) -> dict[str, Any]:
        """HEAD (of one part) with the stored checksums, held to ``etag`` (412: changed)."""
        what = "HEAD" if part is None else f"HEAD of part {part}"
        lean = self._lean()
        if lean is not None:
            headers = [_CHECKSUM_MODE]
            if etag:
                headers.append(("If-Match", f'"{etag}"'))
            query = f"partNumber={part}" if part is not None else ""
            answer = self._call(
                what,
                key,
                lambda: lean.request(
                    "HeadObject", "HEAD", self.bucket, key, query=query, headers=headers
                ),
            )
            return _head_fields(answer.headers)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ChecksumMode": "ENABLED"}
        if etag:
            kwargs["IfMatch"] = f'"{etag}"'
        if part is not None:
            kwargs["PartNumber"] = part
        return self._call(what, key, lambda: self.client.head_object(**kwargs))

    def _part_layout(
        self, key: str, etag: str, count: int, size: int, exact: bool
    ) -> tuple[tuple[int, ...], int, bool, dict[str, list[str]]]:
        """``(sizes, part_bytes, inferred, checksums)`` of a multipart object's parts: exact
        sizes (and per-part checksums, by algorithm) from GetObjectAttributes where the server
        answers it, else from HEADs by part number."""
        listed = self._parts_by_attributes(key, etag, count)
        if listed is not None:
            sizes, sums = listed
            if sum(sizes) == size:
                return tuple(sizes), 0, False, sums
        first = int(self._head_source(key, etag, 1)["ContentLength"])
        if count == 1:
            return (size,), 0, False, {}
        last = int(self._head_source(key, etag, count)["ContentLength"])
        if not exact and first * (count - 1) + last == size and 0 < last <= first:
            # Uniform parts, as every tool writes them: the ETag at the end confirms it.
            return (), first, True, {}
        with ThreadPoolExecutor(PART_HEAD_STREAMS, thread_name_prefix="mover-s3-head") as pool:
            heads = pool.map(lambda n: self._head_source(key, etag, n), range(1, count + 1))
            sizes = [int(h["ContentLength"]) for h in heads]
        return tuple(sizes), 0, False, {}

    def _parts_by_attributes(
        self, key: str, etag: str, count: int
    ) -> tuple[list[int], dict[str, list[str]]] | None:
        """Part sizes and checksums from GetObjectAttributes (1,000 parts a page), or None
        where the server does not answer it (or the answer does not list every part)."""
        sizes: list[int] = []
        sums: dict[str, list[str]] = {}
        marker = 0
        while True:
            answer = self._object_attributes(key, marker)
            if answer is None:
                return None  # not implemented, not permitted: the HEADs will do
            if _etag(answer.get("ETag")) != etag:
                raise SourceChanged(
                    f"source changed during the copy: {self._url(key)} is no longer the "
                    "version the job was prepared from (its ETag changed); run the copy again"
                )
            parts = (answer.get("ObjectParts") or {}).get("Parts") or []
            for p in parts:
                sizes.append(int(p["Size"]))
                for field, algorithm in _SOURCE_CHECKSUMS:
                    if p.get(field):
                        sums.setdefault(algorithm, []).append(base64.b64decode(p[field]).hex())
            listing = answer.get("ObjectParts") or {}
            if not listing.get("IsTruncated") or not parts:
                break
            marker = int(listing.get("NextPartNumberMarker") or 0)
        if len(sizes) != count:
            return None
        return sizes, {a: v for a, v in sums.items() if len(v) == count}

    def _object_attributes(self, key: str, marker: int) -> dict[str, Any] | None:
        """One page of GetObjectAttributes (ETag, ObjectParts) as botocore shapes it, or None
        where the server refuses it."""
        lean = self._lean()
        if lean is not None:
            headers = [
                ("x-amz-object-attributes", "ETag,ObjectParts"),
                ("x-amz-max-parts", "1000"),
                ("x-amz-part-number-marker", str(marker)),
            ]
            try:
                answer = lean.request(
                    "GetObjectAttributes",
                    "GET",
                    self.bucket,
                    key,
                    query="attributes",
                    headers=headers,
                )
                return s3_crt.parse_attributes(answer.body)
            except (s3_crt.EngineError, ValueError):
                return None
        import botocore.exceptions as bex

        try:
            return self.client.get_object_attributes(  # type: ignore[no-any-return]
                Bucket=self.bucket,
                Key=key,
                ObjectAttributes=["ETag", "ObjectParts"],
                MaxParts=1000,
                PartNumberMarker=marker,
            )
        except (bex.ClientError, bex.BotoCoreError):
            return None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        lean = self._lean()
        if lean is not None:
            yield from self._list_lean(lean, prefix)
            return
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix)
        iterator = iter(pages)
        while True:
            page = self._call("listing", prefix, lambda: next(iterator, None))
            if page is None:
                return
            for obj in page.get("Contents", []) or []:
                if obj["Key"].endswith("/"):
                    continue  # a "folder" marker made by a console, not data
                yield ObjectInfo(
                    key=obj["Key"],
                    size=int(obj["Size"]),
                    etag=_etag(obj.get("ETag")),
                    mtime=obj["LastModified"].timestamp() if obj.get("LastModified") else None,
                )

    def _list_lean(self, lean: s3_crt.Lean, prefix: str) -> Iterator[ObjectInfo]:
        """ListObjectsV2 pages on the lean engine; each page's objects are yielded while the
        next is not yet asked (a listing feeds the transfers as it goes)."""
        token: str | None = None
        while True:
            query = f"list-type=2&prefix={quote(prefix, safe='')}"
            if token:
                query += f"&continuation-token={quote(token, safe='')}"
            answer = self._call(
                "listing",
                prefix,
                lambda q=query: lean.request("ListObjectsV2", "GET", self.bucket, query=q),
            )
            page = s3_crt.parse_listing(answer.body)
            for obj in page.objects:
                if obj.key.endswith("/"):
                    continue  # a "folder" marker made by a console, not data
                yield obj
            token = page.next_token
            if not token:
                return

    def is_folder(self, key: str) -> bool:
        """True for a key ending in ``/``, or a prefix that holds objects and is no object."""
        if not key or key.endswith("/"):
            return True
        if self.exists(key):
            return False
        try:
            return self._any_under(key + "/")
        except ObjectNotFound:
            return False  # no bucket: stat (a source) or check_writable (a destination) says so

    def _any_under(self, prefix: str) -> bool:
        """Whether any key starts with ``prefix`` (a listing of one key)."""
        lean = self._lean()
        if lean is not None:
            query = f"list-type=2&max-keys=1&prefix={quote(prefix, safe='')}"
            answer = self._call(
                "listing",
                prefix,
                lambda: lean.request("ListObjectsV2", "GET", self.bucket, query=query),
            )
            return s3_crt.key_count(answer.body) > 0
        answer = self._call(
            "listing",
            prefix,
            lambda: self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1),
        )
        return bool(answer.get("KeyCount") or answer.get("Contents"))

    # -- writing --------------------------------------------------------------------------------

    def check_writable(self, key: str, size: int | None) -> None:
        if not key or key.endswith("/"):
            raise UsageError(f"{self._url(key)}: name the destination object, not a prefix")
        # Some servers (SeaweedFS by default) create a missing bucket on the first write, where
        # AWS refuses: ask first, so a misspelt bucket is an error before any byte moves.
        if time.monotonic() < self._bucket_seen_until:
            return
        if not self._bucket_exists():
            raise NotWritable(
                f"bucket {self.bucket!r} does not exist at {self.endpoint}: create it first"
            )
        self._bucket_seen_until = time.monotonic() + BUCKET_CHECK_TTL_S

    def put(self, key: str, data: memoryview, expected: Digest) -> ObjectInfo:
        """PutObject with the object's crc32c, which the server verifies (BadDigest)."""
        crc = digest_for_store(data, expected, "crc32c", self._url(key))
        lean = self._small(len(data))
        if lean is not None:
            sent = [(_CRC32C_HEADER, crc.b64)]
            done = self._call(
                "PutObject",
                key,
                lambda: lean.request("PutObject", "PUT", self.bucket, key, headers=sent, body=data),
            )
            confirmed = done.headers.get(_CRC32C_HEADER)
            if confirmed is not None and confirmed != crc.b64:
                raise VerificationFailed(
                    f"{self._url(key)}: sent crc32c {crc.b64}, server stored {confirmed}",
                    retryable=True,
                )
            return ObjectInfo(key, len(data), etag=_etag(done.headers.get("etag")))
        answer = self._call(
            "PutObject",
            key,
            lambda: self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=s3_crt.BufferReader(data),
                ContentLength=len(data),
                ChecksumCRC32C=crc.b64,
            ),
        )
        confirmed = answer.get("ChecksumCRC32C")
        if confirmed is not None and confirmed != crc.b64:
            raise VerificationFailed(
                f"{self._url(key)}: sent crc32c {crc.b64}, server stored {confirmed}",
                retryable=True,
            )
        return ObjectInfo(key, len(data), etag=_etag(answer.get("ETag")))

    def open_writer(self, key: str, size: int | None) -> ChunkWriter:
        started = time.monotonic()
        plain = self._plain()
        try:
            if plain is not None:
                made = self._call(
                    "creating a multipart upload",
                    key,
                    lambda: plain.request(
                        "CreateMultipartUpload",
                        "POST",
                        self.bucket,
                        key,
                        query="uploads",
                        headers=[("x-amz-checksum-algorithm", "CRC32C")],
                    ),
                )
                upload = self._xml(made.body, "UploadId", "creating a multipart upload", key)
                retried = made.attempts > 1
            else:
                answer = self._call(
                    "creating a multipart upload",
                    key,
                    lambda: self.client.create_multipart_upload(
                        Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC32C"
                    ),
                )
                upload = answer["UploadId"]
                retried = bool((answer.get("ResponseMetadata") or {}).get("RetryAttempts"))
        except MoverError:
            self._abort_strays(key, None, time.monotonic() - started)
            raise
        if retried:
            self._abort_strays(key, upload, time.monotonic() - started)
        return S3Writer(self, key, upload)

    def _xml(self, body: bytes, tag: str, action: str, key: str) -> str:
        """``tag``'s text in an answer, or a retryable failure naming what lacks it."""
        try:
            return s3_crt.xml_text(body, tag)
        except ValueError as exc:
            raise ChunkFailed(
                f"{self._url(key)} at {self.endpoint}: {action}: {exc}", retryable=True
            ) from exc

    def _uploads(self, key: str) -> tuple[list[dict[str, Any]], str]:
        """The multipart uploads under ``key`` (Key, UploadId, Initiated) and the server's
        ``Date`` of the answer."""
        plain = self._plain()
        if plain is not None:
            query = f"prefix={quote(key, safe='')}&uploads"
            answer = plain.request("ListMultipartUploads", "GET", self.bucket, query=query)
            return s3_crt.parse_uploads(answer.body), answer.headers["date"]
        listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        return listing.get("Uploads") or [], listing["ResponseMetadata"]["HTTPHeaders"]["date"]

    def _abort_strays(self, key: str, keep: str | None, elapsed_s: float) -> None:
        """Abort the uploads of ``key`` that a retried CreateMultipartUpload left: an attempt
        whose answer was lost (a stall past the read time-out) still created an upload, whose
        id mover never saw. Those are the key's uploads initiated while the create ran (by the
        server's clock: its ``Date`` now, less the time the create took), other than ``keep``.
        Best effort: a failure here is logged, the copy goes on."""
        from datetime import timedelta
        from email.utils import parsedate_to_datetime

        try:
            uploads, date = self._uploads(key)
            since = parsedate_to_datetime(date) - timedelta(seconds=elapsed_s + 2)
            for upload in uploads:
                if upload["Key"] != key or upload["UploadId"] == keep:
                    continue
                if upload.get("Initiated") is None or upload["Initiated"] < since:
                    continue  # older: another writer's, or an earlier job's (mover cleanup)
                S3Writer(self, key, upload["UploadId"]).abort_quietly()
        except Exception as exc:
            log.warning(
                "%s: uploads a retried create may have left were not checked: %s",
                self._url(key),
                exc,
            )

    def resume_writer(self, key: str, state: dict[str, Any]) -> ChunkWriter:
        return S3Writer(self, key, state["upload_id"])

    def delete(self, key: str) -> None:
        self.stat(key)  # S3 answers a DELETE of a missing key with success
        plain = self._plain()
        if plain is not None:
            self._call(
                "DELETE", key, lambda: plain.request("DeleteObject", "DELETE", self.bucket, key)
            )
            return
        self._call("DELETE", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=key))

    # -- server-side copy -----------------------------------------------------------------------

    def can_copy_from(self, source: StoreProvider) -> bool:
        """Same endpoint and same credentials: the server can read the source itself.

        Decided from configuration only (no request). Different credentials might also work,
        but cannot be known without trying; the streamed copy is the safe answer then.
        """
        if not isinstance(source, S3Provider):
            return False
        try:
            same_endpoint = source.endpoint == self.endpoint
        except MoverError:
            return False
        return same_endpoint and source._credential_source() == self._credential_source()

    def copy_server_side(
        self, source: StoreProvider, src_key: str, dst_key: str, size: int
    ) -> ObjectInfo:
        if not isinstance(source, S3Provider):
            raise UsageError(f"{self.describe()} cannot copy from {source.describe()} itself")
        src = {"Bucket": source.bucket, "Key": src_key}
        cutoff = int(self.options.get("copy_cutoff_bytes") or MAX_COPY_OBJECT_BYTES)
        plain = self._plain()
        if size > min(cutoff, MAX_COPY_OBJECT_BYTES):
            self._multipart_copy(source, src, dst_key, size)
        elif plain is not None:
            # One signed PUT on the standard-library engine: no botocore to import and build
            # (about 0.6 s of CPU, a quarter of a 256 MiB copy's time). A failure the server
            # reports after its 200 (an ``<Error>`` body) is an error there too.
            copy_source = quote(f"{source.bucket}/{src_key}", safe="/~")
            self._call(
                f"CopyObject from {source._url(src_key)}",
                dst_key,
                lambda: plain.request(
                    "CopyObject",
                    "PUT",
                    self.bucket,
                    dst_key,
                    headers=[("x-amz-copy-source", copy_source)],
                    body=memoryview(b""),
                ),
            )
        else:
            self._call(
                f"CopyObject from {source._url(src_key)}",
                dst_key,
                lambda: self.client.copy_object(Bucket=self.bucket, Key=dst_key, CopySource=src),
            )
        info = self.stat(dst_key)
        if info.size != size:
            raise VerificationFailed(
                f"{self._url(dst_key)}: the server-side copy holds {info.size} bytes, "
                f"expected {size} (did {source._url(src_key)} change?)"
            )
        return info

    def _multipart_copy(
        self, source: S3Provider, src: dict[str, str], dst_key: str, size: int
    ) -> None:
        """UploadPartCopy in parallel parts, then complete; abort the upload on any failure."""
        part = int(self.options.get("copy_part_bytes") or DEFAULT_COPY_PART_BYTES)
        part = max(part, -(-size // MAX_PARTS), MIN_PART_BYTES)
        part = min(part, MAX_PART_BYTES)
        ranges = [(n, off, min(size, off + part) - 1) for n, off in enumerate(range(0, size, part))]
        # CopyObject keeps the source's content type and metadata; a multipart copy must be
        # told them. Every part copy is pinned to the source's ETag, so a source replaced
        # half-way fails (PreconditionFailed) instead of yielding a mixed object.
        head = source._call(
            "HEAD",
            src["Key"],
            lambda: source.client.head_object(Bucket=src["Bucket"], Key=src["Key"]),
        )
        extra: dict[str, Any] = {"Metadata": head.get("Metadata") or {}}
        for field in ("ContentType", "ContentEncoding", "ContentDisposition", "CacheControl"):
            if head.get(field):
                extra[field] = head[field]
        upload = self._call(
            "creating a multipart upload for a copy",
            dst_key,
            lambda: self.client.create_multipart_upload(Bucket=self.bucket, Key=dst_key, **extra),
        )["UploadId"]

        def copy_part(item: tuple[int, int, int]) -> dict[str, Any]:
            number, first, last = item
            answer = self._call(
                f"UploadPartCopy {first}-{last} from {source._url(src['Key'])}",
                dst_key,
                lambda: self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=dst_key,
                    UploadId=upload,
                    PartNumber=number + 1,
                    CopySource=src,
                    CopySourceRange=f"bytes={first}-{last}",
                    CopySourceIfMatch=head["ETag"],
                ),
            )
            return {"PartNumber": number + 1, "ETag": answer["CopyPartResult"]["ETag"]}

        streams = int(self.options.get("copy_streams") or DEFAULT_COPY_STREAMS)
        try:
            with ThreadPoolExecutor(max(1, streams), thread_name_prefix="mover-s3-copy") as pool:
                parts = list(pool.map(copy_part, ranges))
            self._call(
                "completing a multipart copy",
                dst_key,
                lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=dst_key,
                    UploadId=upload,
                    MultipartUpload={"Parts": parts},
                ),
            )
        except BaseException:
            S3Writer(self, dst_key, upload).abort_quietly()
            raise

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and hasattr(client, "close"):
            client.close()


#: Seconds a commit that found its upload gone waits for the object another complete of the
#: same upload may still be assembling on the server.
COMPLETE_RACE_S = 10.0


class S3Writer(ChunkWriter):
    """One multipart upload: parts carry their crc32c, commit completes, abort aborts."""

    def __init__(self, provider: S3Provider, key: str, upload_id: str) -> None:
        self.provider = provider
        self.key = key
        self.upload_id = upload_id
        self._upload_query = quote(upload_id, safe="")

    def _where(self) -> str:
        return f"{self.provider._url(self.key)} at {self.provider.endpoint}"

    def write_part(self, part: int, offset: int, data: memoryview, expected: Digest) -> PartReceipt:
        size = len(data)
        # Another algorithm planned is confirmed over the bytes handed to the SDK here; the
        # server confirms their crc32c.
        crc = digest_for_store(data, expected, "crc32c", f"part {part} of {self._where()}")
        if size == 0:
            # Nothing to carry: the commit writes an empty object (see the module docstring).
            return PartReceipt(part, offset, 0, str(expected), {"empty": True})
        p = self.provider
        plain = p._plain()
        if plain is not None:
            done = p._call(
                f"UploadPart {part + 1}",
                self.key,
                lambda: plain.request(
                    "UploadPart",
                    "PUT",
                    p.bucket,
                    self.key,
                    query=f"partNumber={part + 1}&uploadId={self._upload_query}",
                    headers=[(_CRC32C_HEADER, crc.b64)],
                    body=data,
                ),
            )
            confirmed = done.headers.get(_CRC32C_HEADER)
            etag = done.headers.get("etag") or ""
        else:
            answer = p._call(
                f"UploadPart {part + 1}",
                self.key,
                lambda: p.client.upload_part(
                    Bucket=p.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    PartNumber=part + 1,
                    Body=s3_crt.BufferReader(data),
                    ContentLength=size,
                    ChecksumCRC32C=crc.b64,
                ),
            )
            confirmed = answer.get("ChecksumCRC32C")
            etag = str(answer.get("ETag") or "")
        if confirmed is not None and confirmed != crc.b64:
            raise VerificationFailed(
                f"part {part} of {self._where()}: sent crc32c {crc.b64}, server stored {confirmed}",
                retryable=True,
            )
        if confirmed is None:
            # A server that ignores x-amz-checksum-*: its part ETag is the md5 of the part (no
            # SSE-KMS here), so check that instead; it costs md5 only on such servers.
            plain = _etag(etag) or ""
            if re.fullmatch(r"[0-9a-f]{32}", plain) and plain != hashlib.md5(data).hexdigest():
                raise VerificationFailed(
                    f"part {part} of {self._where()}: the server stored bytes whose md5 differs "
                    "from what mover sent",
                    retryable=True,
                )
        return PartReceipt(
            part, offset, size, str(expected), {"etag": etag, "crc32c": confirmed or crc.b64}
        )

    def commit(self, receipts: list[PartReceipt], size: int) -> ObjectInfo:
        p = self.provider
        ordered = check_receipts(receipts, size, self._where())
        parts = [r for r in ordered if not r.extra.get("empty")]
        if not parts:
            p.put(self.key, memoryview(b""), _EMPTY_CRC32C)
            self.abort_quietly()
            return p.stat(self.key)
        try:
            self._complete(parts)
        except ChunkFailed:
            # A complete whose answer was lost and retried finds no upload: it succeeded if the
            # object now has exactly the multipart ETag these parts make. The first complete
            # may still be running on the server (a process killed while its complete was in
            # flight, resumed at once): the upload is gone before the object appears, so the
            # object is looked for a few times before the commit is called failed.
            if not self._completed_elsewhere(parts):
                raise
        info = p.stat(self.key)
        if info.size != size:
            raise VerificationFailed(f"{self._where()}: holds {info.size} bytes, expected {size}")
        return info

    def _complete(self, parts: list[PartReceipt]) -> None:
        """CompleteMultipartUpload with every part's ETag and crc32c."""
        p = self.provider
        plain = p._plain()
        if plain is None:
            listing = [
                {
                    "PartNumber": r.part + 1,
                    "ETag": r.extra["etag"],
                    "ChecksumCRC32C": r.extra["crc32c"],
                }
                for r in parts
            ]
            p._call(
                "CompleteMultipartUpload",
                self.key,
                lambda: p.client.complete_multipart_upload(
                    Bucket=p.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": listing},
                ),
            )
            return
        from xml.sax.saxutils import escape

        body = "".join(
            f"<Part><PartNumber>{r.part + 1}</PartNumber><ETag>{escape(r.extra['etag'])}</ETag>"
            f"<ChecksumCRC32C>{escape(r.extra['crc32c'])}</ChecksumCRC32C></Part>"
            for r in parts
        )
        document = f'<CompleteMultipartUpload xmlns="{_S3_XMLNS}">{body}</CompleteMultipartUpload>'
        document_bytes = document.encode()
        p._call(
            "CompleteMultipartUpload",
            self.key,
            lambda: plain.request(
                "CompleteMultipartUpload",
                "POST",
                p.bucket,
                self.key,
                query=f"uploadId={self._upload_query}",
                body=memoryview(document_bytes),
            ),
        )

    def _completed_elsewhere(self, parts: list[PartReceipt]) -> bool:
        """Whether these parts' object appears within :data:`COMPLETE_RACE_S` seconds."""
        deadline = time.monotonic() + COMPLETE_RACE_S
        pause = 0.2
        while True:
            if self._completed_before(parts):
                return True
            if time.monotonic() + pause > deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _completed_before(self, parts: list[PartReceipt]) -> bool:
        try:
            info = self.provider.stat(self.key)
        except MoverError:
            return False
        md5s = [_etag(str(r.extra.get("etag"))) or "" for r in parts]
        if not all(re.fullmatch(r"[0-9a-f]{32}", m) for m in md5s):
            return False
        expected = hashlib.md5(b"".join(bytes.fromhex(m) for m in md5s)).hexdigest()
        return info.etag == f"{expected}-{len(parts)}"

    def abort(self) -> None:
        p = self.provider
        plain = p._plain()
        if plain is not None:
            try:
                plain.request(
                    "AbortMultipartUpload",
                    "DELETE",
                    p.bucket,
                    self.key,
                    query=f"uploadId={self._upload_query}",
                )
            except s3_crt.EngineError as exc:
                if exc.code == "NoSuchUpload" or exc.status == 404:
                    return  # already aborted or completed: nothing partial is left
                raise p._error(exc, "AbortMultipartUpload", self.key) from exc
            return
        import botocore.exceptions as bex

        try:
            p.client.abort_multipart_upload(Bucket=p.bucket, Key=self.key, UploadId=self.upload_id)
        except bex.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchUpload" or status == 404:
                return  # already aborted or completed: nothing partial is left
            raise p._error(exc, "AbortMultipartUpload", self.key) from exc
        except Exception as exc:
            raise p._error(exc, "AbortMultipartUpload", self.key) from exc

    def abort_quietly(self) -> None:
        """Abort, ignoring failures: used where another error is already on its way."""
        with contextlib.suppress(MoverError):
            self.abort()

    def state(self) -> dict[str, Any]:
        return {"upload_id": self.upload_id}


# -- helpers --------------------------------------------------------------------------------------


def _read_body_into(body: Any, view: memoryview) -> int:
    """Fill ``view`` from a GET's body; return the count (short only if the body ended).

    The fast path reads from the HTTP response under urllib3 (``http.client``'s ``readinto``,
    which receives straight into the buffer); botocore asks urllib3 for undecoded bytes, so both
    paths see the same bytes. Falls back to ``StreamingBody.readinto`` where that is absent.
    """
    import http.client  # botocore's path only (urllib3 has it loaded)

    raw = getattr(body, "_raw_stream", None)
    fp = getattr(raw, "_fp", None)
    reader = fp.readinto if isinstance(fp, http.client.HTTPResponse) else body.readinto
    got = 0
    want = len(view)
    while got < want:
        n = reader(view[got:])
        if not n:
            break
        got += n
    return got


def _release_body(body: Any) -> None:
    """Return a fully read response's connection to the pool (the fast path bypassed urllib3's
    own bookkeeping, which would otherwise release it at end of stream)."""
    raw = getattr(body, "_raw_stream", None)
    release = getattr(raw, "release_conn", None)
    if release is not None:
        release()
    else:
        body.close()


def _etag(value: str | None) -> str | None:
    return value.strip('"') if value else None


_SESSIONS: dict[tuple[Any, ...], Any] = {}
_SESSION_LOCK = threading.Lock()


def _session(profile: str | None) -> Any:
    """One boto3 Session per profile and AWS environment for the process: building a Session
    loads botocore's data files (0.2 s); a second client from the same Session costs 8 ms.
    S3 to S3 opens two stores, a recursive copy may open several. The key holds the AWS_*
    variables because a Session reads them (credentials, endpoint, retries) once."""
    import boto3

    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    key = (profile, env)
    with _SESSION_LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            if len(_SESSIONS) > 16:  # environments come and go (tests): keep a few
                _SESSIONS.clear()
            session = _SESSIONS[key] = boto3.session.Session(profile_name=profile)
        return session


def _info(key: str, head: dict[str, Any]) -> ObjectInfo:
    checksum = None
    for field, algorithm in _CHECKSUM_FIELDS:
        value = head.get(field)
        # A composite checksum ("...-N") is over the parts' checksums, not the object's bytes.
        if value and "-" not in value and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
            checksum = f"{algorithm}:{base64.b64decode(value).hex()}"
            break
    modified = head.get("LastModified")
    return ObjectInfo(
        key=key,
        size=int(head["ContentLength"]),
        etag=_etag(head.get("ETag")),
        checksum=checksum,
        mtime=modified.timestamp() if modified is not None else None,
    )


def _head_fields(headers: dict[str, str]) -> dict[str, Any]:
    """A HEAD's headers (lower-case names) as botocore's ``head_object`` fields."""
    from mover import httpdate

    head: dict[str, Any] = {field: headers[h] for h, field in _HEAD_HEADERS if h in headers}
    modified = headers.get("last-modified")
    if modified:
        with contextlib.suppress(TypeError, ValueError):
            head["LastModified"] = httpdate.parse(modified)
    return head


def _flag(value: Any) -> bool:
    """A boolean option from TOML (a bool) or from text ("false", "0", "no")."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def _env_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _is_aws(endpoint_url: str) -> bool:
    host = urlsplit(endpoint_url).hostname or ""
    return host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")


def _object_checksum(head: dict[str, Any]) -> tuple[str, str, str] | None:
    """``(algorithm, hex, "full" | "composite")`` of the checksum a HEAD with ``ChecksumMode``
    shows for the whole object: a full-object CRC (or digest) of its bytes, or a composite one
    (the CRC of the parts' CRCs, written ``...-N``)."""
    for field, algorithm in _SOURCE_CHECKSUMS:
        value = head.get(field)
        if not value:
            continue
        encoded, _, parts = str(value).partition("-")
        kind = "composite" if parts or head.get("ChecksumType") == "COMPOSITE" else "full"
        if kind == "full" and algorithm not in _CRC_NAMES:
            continue  # a sha of the whole object cannot be made from chunks read in parallel
        return algorithm, base64.b64decode(encoded).hex(), kind
    return None


def _precondition_failed() -> Exception:
    """The error S3 gives for a failed If-Match, for a server that answered 416 first."""
    import botocore.exceptions as bex

    response = {
        "Error": {"Code": "PreconditionFailed"},
        "ResponseMetadata": {"HTTPStatusCode": 412},
    }
    return bex.ClientError(response, "GetObject")  # type: ignore[arg-type]


def _with(check: SourceCheck, **changes: Any) -> SourceCheck:
    from dataclasses import replace

    return replace(check, **changes)
