"""The request engines of the spike, each doing the same data-plane workloads (issue 10 item 1).

Engines:

* ``botocore``: botocore as mover's S3 store configures it today (one client shared by every
  thread, parameter validation on), with payload signing off and the SDK's own checksums
  ``when_required``, mover's crc32c sent as a header: the baseline.
* ``botocore-trim``: botocore with the request path trimmed: one client per thread (no shared
  connection-pool lock, no shared event hooks), ``parameter_validation=False``, no payload
  hashing, checksums computed once by the caller (``awscrt.checksums.crc32c``) and sent as
  ``x-amz-checksum-crc32c``, bodies read straight into a reused buffer.
* ``awscrt``: the AWS Common Runtime's S3 client (``awscrt.s3.S3Client``): HTTP, connection
  pool, SigV4 signing and retries in C on its own event-loop threads; one request per call
  (``S3RequestType.DEFAULT`` with the operation's name), bodies delivered by callback.
* ``obstore``: the Rust ``object_store`` crate's bindings, asyncio, one ``S3Store``. Its Python
  API has no UploadPart for an upload another process created, so its large upload is its own
  multipart ``put`` (no per-part crc32c; ``checksum_algorithm="sha256"`` adds a per-part sha256
  the server checks) and it has no UploadPartCopy.

CreateMultipartUpload and CompleteMultipartUpload are control calls: botocore does them for
every engine (mover would keep boto3 for control calls, see RESULTS.md).

The target comes from the environment: ``SPIKE_ENDPOINT`` (``http://127.0.0.1:PORT``),
``SPIKE_BUCKET``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

# The request start and the reader (a seekable file over the caller's buffer, no copy) of
# mover's S3 store.
from mover.providers import s3_crt

MiB = 1 << 20

ENGINES = ("botocore", "botocore-trim", "awscrt", "obstore")


@dataclass(frozen=True)
class Target:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str

    @classmethod
    def from_env(cls) -> Target:
        e = os.environ
        return cls(
            e["SPIKE_ENDPOINT"],
            e["SPIKE_BUCKET"],
            e["AWS_ACCESS_KEY_ID"],
            e["AWS_SECRET_ACCESS_KEY"],
            e.get("AWS_REGION", "us-east-1"),
        )

    @property
    def host(self) -> str:
        return self.endpoint.split("://", 1)[1]


def crc32c_b64(data: Any) -> str:
    """The value of ``x-amz-checksum-crc32c``: big-endian crc32c, base64 (awscrt's C code)."""
    from awscrt import checksums

    return base64.b64encode(checksums.crc32c(data).to_bytes(4, "big")).decode()


class Workloads:
    """What every engine does; each method returns a check value (bytes, sums) for the runner.

    ``large_down`` GETs ``key`` in ranges of ``part`` bytes, ``streams`` at once, each into a
    reused buffer, and ``os.pwrite``s it at its offset into ``path`` (pre-sized).
    ``large_up`` uploads ``path`` in parts of ``part`` bytes, ``streams`` at once, each part
    with its crc32c checked by the server. ``copy_object`` and ``upload_part_copy`` copy
    ``key`` server-side. ``small_up``/``small_down`` put/get ``count`` objects of a prefix,
    ``inflight`` at once (down: into memory; the check value is the sum of their crc32c).
    """

    def __init__(self, target: Target) -> None:
        self.t = target

    def large_down(self, key: str, path: str, size: int, part: int, streams: int) -> int:
        raise NotImplementedError

    def large_up(self, path: str, key: str, size: int, part: int, streams: int) -> str:
        raise NotImplementedError

    def copy_object(self, src: str, dst: str) -> str:
        raise NotImplementedError

    def upload_part_copy(self, src: str, dst: str, size: int, part: int, streams: int) -> str:
        raise NotImplementedError

    def small_up(self, items: Sequence[tuple[str, bytes]], inflight: int) -> int:
        raise NotImplementedError

    def small_down(self, keys: Sequence[str], inflight: int) -> int:
        raise NotImplementedError

    def prepare(self, threads: int) -> None:
        """Untimed: what a long-lived process has already done before its requests (clients
        made for ``threads`` threads, models loaded, first connections)."""

    def close(self) -> None:
        pass


def _parts(size: int, part: int) -> list[tuple[int, int, int]]:
    """(number from 1, offset, length) of each part."""
    return [(i + 1, off, min(part, size - off)) for i, off in enumerate(range(0, size, part))]


def _presize(path: str, size: int) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, size)
    return fd


def _crc_sum(values: Sequence[bytes | memoryview]) -> int:
    from awscrt import checksums

    return sum(checksums.crc32c(v) for v in values) & 0xFFFFFFFFFFFF


# ---------------------------------------------------------------------------------------------
# botocore, as mover has it and trimmed


class Threaded(Workloads):
    """Large transfers on threads, each part through the engine's one-request calls:
    ``_get_into`` (a ranged GET into a buffer) and ``_upload_part`` (one UploadPart with its
    crc32c); CreateMultipartUpload and Complete go through :meth:`control`."""

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self._local = threading.local()

    def control(self) -> Any:
        """A botocore client for the control calls."""
        raise NotImplementedError

    def _get_into(self, key: str, offset: int, view: memoryview) -> int:
        raise NotImplementedError

    def _upload_part(
        self, key: str, upload: str, number: int, view: memoryview, crc: str
    ) -> tuple[str, str | None]:
        """(ETag, the crc32c the server confirmed or None)."""
        raise NotImplementedError

    def _buffer(self, size: int) -> memoryview:
        """This thread's part buffer, reused from part to part."""
        buf = getattr(self._local, "buf", None)
        if buf is None or len(buf) < size:
            buf = self._local.buf = memoryview(bytearray(size))
        return buf[:size]

    def large_down(self, key: str, path: str, size: int, part: int, streams: int) -> int:
        fd = _presize(path, size)
        try:

            def one(p: tuple[int, int, int]) -> int:
                _n, off, length = p
                view = self._buffer(length)
                got = self._get_into(key, off, view)
                return os.pwrite(fd, view[:got], off)

            with ThreadPoolExecutor(streams) as pool:
                total = sum(pool.map(one, _parts(size, part)))
            os.fsync(fd)
        finally:
            os.close(fd)
        return total

    def large_up(self, path: str, key: str, size: int, part: int, streams: int) -> str:
        c = self.control()
        upload = c.create_multipart_upload(
            Bucket=self.t.bucket, Key=key, ChecksumAlgorithm="CRC32C"
        )["UploadId"]
        fd = os.open(path, os.O_RDONLY)
        try:

            def one(p: tuple[int, int, int]) -> dict[str, Any]:
                number, off, length = p
                view = self._buffer(length)
                os.preadv(fd, [view], off)
                crc = crc32c_b64(view)  # once, in C; the server checks it (BadDigest)
                etag, confirmed = self._upload_part(key, upload, number, view, crc)
                if confirmed not in (None, crc):
                    raise RuntimeError(f"part {number}: server stored another crc32c")
                return {"PartNumber": number, "ETag": etag, "ChecksumCRC32C": crc}

            with ThreadPoolExecutor(streams) as pool:
                parts = list(pool.map(one, _parts(size, part)))
        except BaseException:
            c.abort_multipart_upload(Bucket=self.t.bucket, Key=key, UploadId=upload)
            raise
        finally:
            os.close(fd)
        done = c.complete_multipart_upload(
            Bucket=self.t.bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )
        return str(done["ETag"]).strip('"')


class Botocore(Threaded):
    """Threads; ``trimmed`` gives each thread its own client without parameter validation."""

    def __init__(self, target: Target, trimmed: bool) -> None:
        super().__init__(target)
        import botocore.session

        self.trimmed = trimmed
        self.session = botocore.session.get_session()
        self._lock = threading.Lock()  # client creation is not thread-safe on one session
        self._spare: queue.Queue[Any] = queue.Queue()  # clients made by prepare, one a thread
        self._shared = None if trimmed else self._make()

    def _make(self) -> Any:
        from botocore.config import Config

        config = Config(
            region_name=self.t.region,
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            parameter_validation=not self.trimmed,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=64,
            retries={"mode": "standard", "max_attempts": 3},
            tcp_keepalive=True,
        )
        with self._lock:
            return self.session.create_client(
                "s3",
                endpoint_url=self.t.endpoint,
                aws_access_key_id=self.t.access_key,
                aws_secret_access_key=self.t.secret_key,
                config=config,
            )

    def prepare(self, threads: int) -> None:
        clients = [self._shared] if self._shared is not None else []
        if self.trimmed:
            clients = [self._make() for _ in range(threads)]
            for c in clients:
                self._spare.put(c)
        for c in clients:
            c.head_bucket(Bucket=self.t.bucket)  # loads the model's handlers, connects

    def control(self) -> Any:
        return self.client

    @property
    def client(self) -> Any:
        if self._shared is not None:
            return self._shared
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = (
                self._spare.get_nowait() if not self._spare.empty() else self._make()
            )
        return client

    def _get_into(self, key: str, offset: int, view: memoryview) -> int:
        resp = self.client.get_object(
            Bucket=self.t.bucket, Key=key, Range=f"bytes={offset}-{offset + len(view) - 1}"
        )
        body = resp["Body"]
        raw = getattr(body, "_raw_stream", None)
        fp = getattr(raw, "_fp", None)
        reader = fp.readinto if isinstance(fp, http.client.HTTPResponse) else body.readinto
        got = 0
        while got < len(view):
            n = reader(view[got:])
            if not n:
                break
            got += n
        release = getattr(raw, "release_conn", None)
        if release is not None:
            release()
        return got

    def _upload_part(
        self, key: str, upload: str, number: int, view: memoryview, crc: str
    ) -> tuple[str, str | None]:
        answer = self.client.upload_part(
            Bucket=self.t.bucket,
            Key=key,
            UploadId=upload,
            PartNumber=number,
            Body=s3_crt.BufferReader(view),
            ContentLength=len(view),
            ChecksumCRC32C=crc,
        )
        return answer["ETag"], answer.get("ChecksumCRC32C")

    def copy_object(self, src: str, dst: str) -> str:
        answer = self.client.copy_object(
            Bucket=self.t.bucket, Key=dst, CopySource={"Bucket": self.t.bucket, "Key": src}
        )
        return str(answer["CopyObjectResult"]["ETag"]).strip('"')

    def upload_part_copy(self, src: str, dst: str, size: int, part: int, streams: int) -> str:
        c = self.client
        upload = c.create_multipart_upload(Bucket=self.t.bucket, Key=dst)["UploadId"]

        def one(p: tuple[int, int, int]) -> dict[str, Any]:
            number, off, length = p
            answer = self.client.upload_part_copy(
                Bucket=self.t.bucket,
                Key=dst,
                UploadId=upload,
                PartNumber=number,
                CopySource={"Bucket": self.t.bucket, "Key": src},
                CopySourceRange=f"bytes={off}-{off + length - 1}",
            )
            return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

        with ThreadPoolExecutor(streams) as pool:
            parts = list(pool.map(one, _parts(size, part)))
        done = c.complete_multipart_upload(
            Bucket=self.t.bucket, Key=dst, UploadId=upload, MultipartUpload={"Parts": parts}
        )
        return str(done["ETag"]).strip('"')

    def small_up(self, items: Sequence[tuple[str, bytes]], inflight: int) -> int:
        def one(item: tuple[str, bytes]) -> int:
            key, data = item
            self.client.put_object(
                Bucket=self.t.bucket,
                Key=key,
                Body=data,
                ContentLength=len(data),
                ChecksumCRC32C=crc32c_b64(data),
            )
            return len(data)

        if inflight == 1:
            return sum(one(i) for i in items)
        with ThreadPoolExecutor(inflight) as pool:
            return sum(pool.map(one, items))

    def small_down(self, keys: Sequence[str], inflight: int) -> int:
        from awscrt import checksums

        def one(key: str) -> int:
            body = self.client.get_object(Bucket=self.t.bucket, Key=key)["Body"]
            data = body.read()
            return checksums.crc32c(data)

        if inflight == 1:
            return sum(one(k) for k in keys) & 0xFFFFFFFFFFFF
        with ThreadPoolExecutor(inflight) as pool:
            return sum(pool.map(one, keys)) & 0xFFFFFFFFFFFF


# ---------------------------------------------------------------------------------------------
# awscrt's S3 client


class AwsCrt(Threaded):
    """One ``S3Client``; each request a ``DEFAULT`` meta request, ``inflight`` at once."""

    def __init__(self, target: Target, event_loop_threads: int = 2) -> None:
        super().__init__(target)
        from awscrt import auth, io, s3

        loop = io.EventLoopGroup(event_loop_threads)
        bootstrap = io.ClientBootstrap(loop, io.DefaultHostResolver(loop))
        creds = auth.AwsCredentialsProvider.new_static(target.access_key, target.secret_key)
        signing = s3.create_default_s3_signing_config(
            region=target.region, credential_provider=creds
        )
        self.client = s3.S3Client(
            bootstrap=bootstrap,
            region=target.region,
            signing_config=signing,
            tls_mode=s3.S3RequestTlsMode.DISABLED,
            max_active_connections_override=64,
        )
        self._control: Botocore | None = None

    def control(self) -> Any:
        if self._control is None:
            self._control = Botocore(self.t, trimmed=True)
        return self._control.client

    def _request(
        self,
        method: str,
        path: str,
        operation: str,
        headers: Sequence[tuple[str, str]] = (),
        body: Any = None,
        on_body: Callable[..., None] | None = None,
    ) -> Any:
        """Start one request; returns (S3Request, headers dict filled when done)."""
        from awscrt import http

        answer: dict[str, Any] = {}

        def on_headers(status_code: int, headers: Any, **_kw: Any) -> None:
            answer["status"] = status_code
            answer.update({k.lower(): v for k, v in headers})

        request = http.HttpRequest(
            method,
            f"/{self.t.bucket}/{path}",
            http.HttpHeaders([("Host", self.t.host), *headers]),
            body_stream=body,
        )
        return s3_crt.start(self.client, operation, request, on_headers, on_body), answer

    def _get_into(self, key: str, offset: int, view: memoryview) -> int:
        got = [0]

        def on_body(chunk: bytes, **_kw: Any) -> None:
            # chunks of one response arrive in order; their offset is the object's, not ours
            view[got[0] : got[0] + len(chunk)] = chunk
            got[0] += len(chunk)

        made, _answer = self._request(
            "GET",
            key,
            "GetObject",
            [("Range", f"bytes={offset}-{offset + len(view) - 1}")],
            on_body=on_body,
        )
        made.finished_future.result()
        return got[0]

    def _upload_part(
        self, key: str, upload: str, number: int, view: memoryview, crc: str
    ) -> tuple[str, str | None]:
        made, answer = self._request(
            "PUT",
            f"{key}?partNumber={number}&uploadId={upload}",
            "UploadPart",
            [("Content-Length", str(len(view))), ("x-amz-checksum-crc32c", crc)],
            body=s3_crt.BufferReader(view),
        )
        made.finished_future.result()
        return answer["etag"], answer.get("x-amz-checksum-crc32c")

    def copy_object(self, src: str, dst: str) -> str:
        made, answer = self._request(
            "PUT", dst, "CopyObject", [("x-amz-copy-source", f"/{self.t.bucket}/{src}")]
        )
        made.finished_future.result()
        return str(answer.get("status"))

    def upload_part_copy(self, src: str, dst: str, size: int, part: int, streams: int) -> str:
        c = self.control()
        upload = c.create_multipart_upload(Bucket=self.t.bucket, Key=dst)["UploadId"]
        bodies: dict[int, bytearray] = {}

        def start(p: tuple[int, int, int]) -> tuple[int, Any]:
            number, off, length = p
            body = bodies.setdefault(number, bytearray())
            made, _answer = self._request(
                "PUT",
                f"{dst}?partNumber={number}&uploadId={upload}",
                "UploadPartCopy",
                [
                    ("x-amz-copy-source", f"/{self.t.bucket}/{src}"),
                    ("x-amz-copy-source-range", f"bytes={off}-{off + length - 1}"),
                ],
                on_body=lambda chunk, offset, body=body, **_kw: body.extend(chunk),
            )
            return number, made

        parts = []
        for number, made in [start(p) for p in _parts(size, part)]:
            made.finished_future.result()
            text = bodies[number].decode()
            etag = text.split("<ETag>", 1)[1].split("</ETag>", 1)[0].replace("&#34;", '"')
            parts.append({"PartNumber": number, "ETag": etag})
        done = c.complete_multipart_upload(
            Bucket=self.t.bucket, Key=dst, UploadId=upload, MultipartUpload={"Parts": parts}
        )
        return str(done["ETag"]).strip('"')

    def _bounded(self, starts: Sequence[Callable[[], Any]], inflight: int) -> None:
        """Run requests ``inflight`` at once from this one Python thread."""
        gate = threading.Semaphore(inflight)
        pending = []
        for start in starts:
            gate.acquire()
            made = start()
            made.finished_future.add_done_callback(lambda _f: gate.release())
            pending.append(made)
        for made in pending:
            made.finished_future.result()

    def small_up(self, items: Sequence[tuple[str, bytes]], inflight: int) -> int:
        def starter(key: str, data: bytes) -> Callable[[], Any]:
            def start() -> Any:
                made, _answer = self._request(
                    "PUT",
                    key,
                    "PutObject",
                    [
                        ("Content-Length", str(len(data))),
                        ("x-amz-checksum-crc32c", crc32c_b64(data)),
                    ],
                    body=io.BytesIO(data),
                )
                return made

            return start

        self._bounded([starter(k, d) for k, d in items], inflight)
        return sum(len(d) for _k, d in items)

    def small_down(self, keys: Sequence[str], inflight: int) -> int:
        bodies: list[bytearray] = []

        def starter(key: str) -> Callable[[], Any]:
            def start() -> Any:
                body = bytearray()
                bodies.append(body)
                made, _answer = self._request(
                    "GET",
                    key,
                    "GetObject",
                    on_body=lambda chunk, offset, **_kw: body.extend(chunk),
                )
                return made

            return start

        self._bounded([starter(k) for k in keys], inflight)
        return _crc_sum(bodies)


# ---------------------------------------------------------------------------------------------
# obstore


class Obstore(Workloads):
    """One ``S3Store``; coroutines, ``inflight`` at once on one asyncio loop."""

    def __init__(self, target: Target, checksum: str | None = None) -> None:
        super().__init__(target)
        from obstore.store import S3Store

        extra = {"checksum_algorithm": checksum} if checksum else {}
        self.store = S3Store(
            target.bucket,
            endpoint=target.endpoint,
            access_key_id=target.access_key,
            secret_access_key=target.secret_key,
            region=target.region,
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
            **extra,
        )

    @staticmethod
    async def _bounded(coros: Sequence[Any], inflight: int) -> list[Any]:
        gate = asyncio.Semaphore(inflight)

        async def one(coro: Any) -> Any:
            async with gate:
                return await coro

        return await asyncio.gather(*(one(c) for c in coros))

    def large_down(self, key: str, path: str, size: int, part: int, streams: int) -> int:
        import obstore

        fd = _presize(path, size)

        async def one(off: int, length: int) -> int:
            data = await obstore.get_range_async(self.store, key, start=off, length=length)
            return os.pwrite(fd, memoryview(data), off)  # Rust's buffer, no copy

        try:
            parts = _parts(size, part)
            total = sum(asyncio.run(self._bounded([one(o, n) for _p, o, n in parts], streams)))
            os.fsync(fd)
        finally:
            os.close(fd)
        return total

    def large_up(self, path: str, key: str, size: int, part: int, streams: int) -> str:
        import obstore

        with open(path, "rb") as f:
            answer = obstore.put(
                self.store, key, f, use_multipart=True, chunk_size=part, max_concurrency=streams
            )
        return str(answer.get("e_tag") or "").strip('"')

    def copy_object(self, src: str, dst: str) -> str:
        import obstore

        obstore.copy(self.store, src, dst)
        return "ok"

    def small_up(self, items: Sequence[tuple[str, bytes]], inflight: int) -> int:
        import obstore

        async def one(key: str, data: bytes) -> Any:
            return await obstore.put_async(self.store, key, data, use_multipart=False)

        asyncio.run(self._bounded([one(k, d) for k, d in items], inflight))
        return sum(len(d) for _k, d in items)

    def small_down(self, keys: Sequence[str], inflight: int) -> int:
        import obstore

        async def one(key: str) -> Any:
            result = await obstore.get_async(self.store, key)
            return await result.bytes_async()

        bodies = asyncio.run(self._bounded([one(k) for k in keys], inflight))
        return _crc_sum([memoryview(b) for b in bodies])


def make(engine: str, target: Target) -> Workloads:
    """The engine named ``engine`` (see :data:`ENGINES`; ``obstore-sha256`` adds checksums)."""
    if engine == "botocore":
        return Botocore(target, trimmed=False)
    if engine == "botocore-trim":
        return Botocore(target, trimmed=True)
    if engine == "awscrt":
        return AwsCrt(target)
    if engine == "obstore":
        return Obstore(target)
    if engine == "obstore-sha256":
        return Obstore(target, checksum="sha256")
    raise SystemExit(f"unknown engine {engine!r} (known: {', '.join(ENGINES)}, obstore-sha256)")
