"""One set of copy options for every door (mover.options): the CLI, ``mover.copy``,
``mover.submit`` and the ``mover.submit`` Celery task take the same names and values and
record the same job options, or refuse with the same one-line error.

The CLI runs in this process (embedded); ``mover.submit`` and the task body plan on the
session's Redis (a database of their own) and publish chunks no worker consumes: only the
recorded options are compared, not the copy.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from mover.errors import MoverError

pytestmark = [pytest.mark.integration, pytest.mark.redis]

MiB = 1 << 20

#: (streams, chunk_size) as given -> the recorded (streams, chunk_size in bytes), or the error.
CASES: list[tuple[Any, Any, tuple[int, int | None] | str]] = [
    (2, "8MiB", (2, 8 * MiB)),
    (3, 1048576, (3, MiB)),
    (4, "1.5M", (4, 3 * MiB // 2)),
    (4, None, (4, None)),
    (0, "8MiB", "option streams: from 1 to 256 (got 0)"),
    (300, None, "option streams: from 1 to 256 (got 300)"),
    (2, "eight", "option chunk_size: a size in bytes or text such as 8MiB (got 'eight')"),
]


def _cli(src: Path, dst: Path, streams: Any, chunk: Any) -> tuple[int, int | None] | str:
    from mover.api import default_jobstore
    from mover.cli.main import cli

    args = ["copy", str(src), str(dst), "--executor", "embedded", "-q", "--streams", str(streams)]
    if chunk is not None:
        args += ["--chunk-size", str(chunk)]
    result = CliRunner().invoke(cli, args)
    if result.exit_code:
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.startswith("mover: ")]
        assert len(lines) == 1, result.output
        return lines[0].removeprefix("mover: ")
    job = default_jobstore().list()[0]
    return job.options["streams"], job.options["chunk_size"]


def _python(src: Path, dst: Path, streams: Any, chunk: Any, fleet: bool) -> Any:
    """``mover.copy`` (embedded) or ``mover.submit`` (the fleet): the options recorded."""
    import mover

    try:
        if fleet:
            job = mover.submit(str(src), str(dst), streams=streams, chunk_size=chunk).status()
        else:
            job = mover.copy(str(src), str(dst), streams=streams, chunk_size=chunk)
    except MoverError as exc:
        return exc.message
    return job.options["streams"], job.options["chunk_size"]


def _task(src: Path, dst: Path, streams: Any, chunk: Any) -> tuple[int, int | None] | str:
    """The body of the ``mover.submit`` task, as a worker runs it (its app publishes)."""
    from mover.executors.celery_app import client_app
    from mover.jobstores.redis import RedisJobStore
    from mover.workers import tasks

    options: dict[str, Any] = {"streams": streams}
    if chunk is not None:
        options["chunk_size"] = chunk
    # A task id of its own, as every delivery of a new task has (one id is one job).
    me = SimpleNamespace(app=client_app(), request=SimpleNamespace(id=f"doors-{uuid.uuid4()}"))
    request = {"source": str(src), "destination": str(dst), "options": options}
    try:
        job_id = tasks.submit(me, request)
    except ValueError as exc:
        return str(exc).removeprefix("mover.submit: ").rsplit(" (job ", 1)[0]
    job = RedisJobStore().get(job_id)
    return job.options["streams"], job.options["chunk_size"]


DOORS = {
    "cli": _cli,
    "mover.copy": lambda *args: _python(*args, fleet=False),
    "mover.submit": lambda *args: _python(*args, fleet=True),
    "task": _task,
}


def test_every_door_takes_the_same_options(
    redis_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import redis

    base = redis_server.url.rsplit("/", 1)[0]
    broker = f"{base}/{9 + os.getpid() % 6}"  # a database of its own, emptied at the end
    monkeypatch.setenv("MOVER_BROKER_URL", broker)
    request_cleanup = redis.Redis.from_url(broker)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 * MiB + 7))
    for n, (streams, chunk, expected) in enumerate(CASES):
        for door, run in DOORS.items():
            if door == "cli":
                monkeypatch.delenv("MOVER_BROKER_URL")
            try:
                got = run(src, tmp_path / f"{door}-{n}.bin", streams, chunk)
            finally:
                if door == "cli":
                    monkeypatch.setenv("MOVER_BROKER_URL", broker)
            assert got == expected, (door, streams, chunk)
    request_cleanup.flushdb()
