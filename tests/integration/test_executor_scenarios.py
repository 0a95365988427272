"""The same scenarios through both executors end in the same job records.

One item lifecycle (mover.lifecycle) serves the embedded executor (threads here, SQLite) and
the celery executor (a real ``mover worker`` on a private Redis): a copy that succeeds, a
source that fails its reads, a cancelled copy, a retryable error then success, and a commit
that fails (the source's Content-MD5 does not match its bytes). Each is submitted through the
executor contract (submit, wait, cancel) and the records are compared field by field. The
bytes of the copies that succeed are read back with sha256 here.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_fleet import Fleet, make_fleet

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.celery]

MiB = 1 << 20
DATA = os.urandom(2 * MiB + 12345)
SLOW = os.urandom(12 * MiB)


class _Faults(BaseHTTPRequestHandler):
    """Ranged HTTP source whose file name says its fault: ``ok``, ``flaky`` (the first GET of
    each range answers 503), ``gone`` (HEAD answers, every GET 404), ``badmd5`` (a
    Content-MD5 of other bytes), ``slow`` (1 MiB/s per request, to cancel mid-copy)."""

    protocol_version = "HTTP/1.1"
    seen: set = set()
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        return SLOW if "slow" in self.path else DATA

    def _head(self, code: int, length: int, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if "badmd5" in self.path:
            md5 = base64.b64encode(hashlib.md5(b"other bytes").digest()).decode()
            self.send_header("Content-MD5", md5)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def do_HEAD(self) -> None:
        self._head(200, len(self._body()))

    def do_GET(self) -> None:
        body = self._body()
        if "gone" in self.path:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if "flaky" in self.path:
            key = (self.path, self.headers.get("Range"))
            with self.lock:
                first = key not in self.seen
                self.seen.add(key)
            if first:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        start, end = 0, len(body) - 1
        match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            start, end = int(match.group(1)), min(end, int(match.group(2) or end))
            self._head(206, end - start + 1, {"Content-Range": f"bytes {start}-{end}/{len(body)}"})
        else:
            self._head(200, len(body))
        piece = 128 * 1024
        for at in range(start, end + 1, piece):
            try:
                self.wfile.write(body[at : min(at + piece, end + 1)])
            except OSError:
                return
            if "slow" in self.path:
                time.sleep(piece / MiB)


@pytest.fixture(scope="module")
def faults() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Faults)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def one_worker(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One ``mover worker`` (prefork, -c 2) on the session's Redis, no S3 or Swift."""
    fleet = make_fleet(redis_server, tmp_path_factory.mktemp("scenarios"), None)
    try:
        fleet.wait_ready(fleet.start_worker("scenarios"))
        yield fleet
    finally:
        for w in fleet.workers:
            fleet.stop(w)


def _record(job: Any, name: str) -> dict[str, Any]:
    """What must be the same wherever the job ran (each executor reads its own URLs,
    ``/NAME/file``, so that the flaky server fails each one's first reads)."""

    def same(text: str | None) -> str | None:
        return text.replace(f"/{name}/", "/EXECUTOR/") if text else text

    return {
        "state": job.state,
        "error": same(job.error),
        "items": [(i.state, same(i.error), i.size, i.digest) for i in job.items],
    }


def _run(executor: Any, source: str, destination: Path, cancel: bool) -> Any:
    from mover.motion import Options
    from mover.transfer import Request

    request = Request(source, str(destination), False, Options(2, 1 * MiB))
    job = executor.submit(request)
    if cancel:
        deadline = time.monotonic() + 30
        while not any(c.state == "done" for c in executor.status(job.id).items[0].chunks):
            assert time.monotonic() < deadline, "no chunk done in 30 s"
            time.sleep(0.1)
        executor.cancel(job.id)
    return executor.wait(job.id, timeout_s=120)


SCENARIOS = [
    # (file name, cancel, expected job state)
    ("ok.bin", False, "done"),
    ("gone.bin", False, "failed"),
    ("slow.bin", True, "cancelled"),
    ("flaky.bin", False, "done"),
    ("badmd5.bin", False, "failed"),
]


def test_same_scenarios_same_records_on_both_executors(
    one_worker: Fleet, faults: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from mover.executors.celery import CeleryExecutor
    from mover.executors.embedded import EmbeddedExecutor
    from mover.jobstores.redis import RedisJobStore
    from mover.jobstores.sqlite import SqliteJobStore

    monkeypatch.setenv("MOVER_BROKER_URL", one_worker.redis.url)
    executors = {
        "embedded": lambda: EmbeddedExecutor(SqliteJobStore(tmp_path / "jobs.db"), streams=2),
        "celery": lambda: CeleryExecutor(RedisJobStore(one_worker.redis.url)),
    }
    records: dict[str, dict[str, Any]] = {}
    for name, make in executors.items():
        out = tmp_path / name
        out.mkdir()
        for file, cancel, _ in SCENARIOS:
            job = _run(make(), f"{faults}/{name}/{file}", out / file, cancel)
            records.setdefault(file, {})[name] = _record(job, name)
            if job.state == "done":  # read back with hashlib, not mover's digest
                assert hashlib.sha256((out / file).read_bytes()).digest() == (
                    hashlib.sha256(DATA).digest()
                )
            else:
                assert not (out / file).exists()
        assert not [p.name for p in out.iterdir() if ".mover-" in p.name], "temporary data left"
    for file, _, state in SCENARIOS:
        embedded, celery = records[file]["embedded"], records[file]["celery"]
        assert embedded["state"] == state, (file, embedded)
        assert embedded == celery, file
