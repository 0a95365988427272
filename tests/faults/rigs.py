"""What the fault families share: running ``mover`` as a real process, reading its job record,
pacing its I/O, a small tmpfs, source objects written with boto3, a fleet of real workers.

Everything that checks *content* lives in :mod:`tests.faults.harness` and uses clients of its
own; this module only drives mover and the servers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mover.jobs import FINAL
from tests.faults.harness import STUCK, Fault, MiB, Verdict, wait_until
from tests.integration.test_fleet import MOVER, ROOT, Fleet, Worker
from tests.servers import SwiftServer

#: Put first on PYTHONPATH of every mover process: it holds the I/O pacer (sitecustomize).
PACER_DIR = Path(__file__).resolve().parent / "pacer"


# -- I/O pacing -----------------------------------------------------------------------------


class Pace:
    """The control file of :mod:`tests.faults.pacer.sitecustomize`: which folders to slow
    down and by how much per call. Processes read it again when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.off()

    def set(self, dirs: list[Path], delay_s: float, sync_delay_s: float | None = None) -> None:
        control = {"dirs": [str(d) for d in dirs], "delay_s": delay_s}
        if sync_delay_s is not None:
            control["sync_delay_s"] = sync_delay_s
        temp = self.path.with_suffix(".new")
        temp.write_text(json.dumps(control))
        os.replace(temp, self.path)

    def off(self) -> None:
        self.set([], 0.0)


def mover_env(folder: Path, pace: Pace | None = None, **extra: str) -> dict[str, str]:
    """The environment of an embedded mover process of one fault: its own job store,
    catalogue and configuration under ``folder``, the pacer on its path, no broker."""
    env = dict(os.environ)
    env.pop("MOVER_BROKER_URL", None)
    env.update(
        MOVER_STATE_DIR=str(folder / "state"),
        MOVER_CONFIG=str(folder / "config.toml"),
        PYTHONPATH=f"{PACER_DIR}{os.pathsep}{ROOT}",
        AWS_EC2_METADATA_DISABLED="true",
    )
    if pace is not None:
        env["MOVER_FAULT_PACE"] = str(pace.path)
    env.update(extra)
    return env


def write_config(folder: Path, stores: dict[str, dict[str, Any]]) -> Path:
    """A mover TOML configuration with these stores (values: str, int or float)."""
    lines = []
    for name, table in stores.items():
        lines.append(f"[stores.{name}]")
        for key, value in table.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    path = folder / "config.toml"
    path.write_text("\n".join(lines))
    return path


# -- mover as a process ---------------------------------------------------------------------


@dataclass
class Run:
    """A mover command running in the background, its output in files (readable after a
    kill -9, which a pipe would not make easy)."""

    args: list[str]
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the command (its whole process group) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def result(self, timeout_s: float) -> subprocess.CompletedProcess[str]:
        """Wait for the end (killing it after ``timeout_s``); returncode None if killed."""
        try:
            code: int | None = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            code = None
        return subprocess.CompletedProcess(
            self.args,
            code,
            self.out.read_text(errors="replace"),
            self.err.read_text(errors="replace"),
        )


def start(env: dict[str, str], folder: Path, *args: str) -> Run:
    """Start ``mover ARGS`` in its own session (so a kill reaches only it)."""
    n = len(list(folder.glob("run-*.out")))
    out, err = folder / f"run-{n}.out", folder / f"run-{n}.err"
    argv = [*MOVER, *args]
    with open(out, "wb") as stdout, open(err, "wb") as stderr:  # the child keeps its copies
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    return Run(argv, proc, out, err)


def run(
    env: dict[str, str], folder: Path, *args: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``mover ARGS`` to its end (killed after ``timeout_s``: returncode None)."""
    return start(env, folder, *args).result(timeout_s)


def stop_pid(pid: int) -> bool:
    """SIGKILL a worker process of this harness by its PID if it still runs (checked to be
    one of this checkout's workers, so that a reused PID is left alone); True if it did."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    if "celery" not in cmdline or not cmdline.startswith(str(ROOT)):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


# -- job records ----------------------------------------------------------------------------


def embedded_job(folder: Path, job_id: str | None = None) -> Any:
    """The job record an embedded mover of this fault wrote (the newest one), or None."""
    from mover.errors import JobNotFound
    from mover.jobstores.sqlite import SqliteJobStore

    path = folder / "state" / "jobs.sqlite3"
    if not path.exists():
        return None
    store = SqliteJobStore(path, write_behind=False)
    try:
        if job_id is None:
            found = store.list(1)
            if not found:
                return None
            job_id = found[0].id
        return store.get(job_id)
    except JobNotFound:
        return None
    finally:
        store.close()


def chunks_done(job: Any) -> int:
    return 0 if job is None else sum(1 for i in job.items for c in i.chunks if c.state == "done")


def item_state(job: Any) -> str | None:
    return None if job is None or not job.items else job.items[0].state


def verdict_of(job: Any, runs: list[subprocess.CompletedProcess[str]], fault: Fault) -> Verdict:
    """The verdict input for a job record; a command refused before any job was recorded
    (exit 1, one line, nothing moved) counts as failed with that line as its error."""
    if job is not None:
        return Verdict(job.state, job.error, runs)
    last = runs[-1] if runs else None
    if last is not None and last.returncode not in (0, None):
        lines = [x for x in last.stderr.strip().splitlines() if x.startswith("mover: ")]
        fault.notes.append("refused before a job was recorded")
        return Verdict("failed", lines[-1] if len(lines) == 1 else last.stderr, runs)
    return Verdict(None, None, runs)


# -- a small disk that fills up -------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(folder: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` mounted at ``folder`` (root only), unmounted at the end."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the disk-full faults mount a tmpfs and need root")
        pytest.skip("the disk-full faults mount a tmpfs and need root")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(folder)], check=True
    )
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, name: str = "filler") -> int:
    """Write zeros to ``folder/name`` until the file system is full; bytes written."""
    written = 0
    block = bytes(256 * 1024)
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            try:
                written += os.write(fd, block)
            except OSError:
                break
        small = bytes(4096)
        while True:
            try:
                written += os.write(fd, small)
            except OSError:
                return written
    finally:
        os.close(fd)


# -- S3 -------------------------------------------------------------------------------------


@contextlib.contextmanager
def bucket(client: Any, name: str) -> Iterator[str]:
    """A bucket for one family, emptied and removed afterwards (objects and uploads), so
    that the servers the rest of the session shares do not carry the faults' data."""
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            uploads = client.list_multipart_uploads(Bucket=name).get("Uploads", []) or []
            for u in uploads:
                client.abort_multipart_upload(Bucket=name, Key=u["Key"], UploadId=u["UploadId"])
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", []) or []]
                if keys:
                    client.delete_objects(Bucket=name, Delete={"Objects": keys})
            client.delete_bucket(Bucket=name)


@contextlib.contextmanager
def container(conn: Any, name: str) -> Iterator[str]:
    """A Swift container for one family, emptied and removed afterwards, with the segments
    container mover makes beside it."""
    conn.put_container(name)
    try:
        yield name
    finally:
        for each in (name, f"{name}_segments"):
            with contextlib.suppress(Exception):
                _, objects = conn.get_container(each, full_listing=True)
                for obj in objects:
                    conn.delete_object(each, obj["name"])
                conn.delete_container(each)


def put_source(client: Any, bucket: str, key: str, data: bytes, multipart: bool) -> None:
    """Write a source object with boto3 itself: one PUT, or a multipart upload of 5 MiB
    parts (whose ETag is then the md5 of the parts' md5s, ``-N``)."""
    if not multipart:
        client.put_object(Bucket=bucket, Key=key, Body=data)
        return
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for n, offset in enumerate(range(0, len(data), 5 * MiB), start=1):
        answer = client.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload,
            PartNumber=n,
            Body=data[offset : offset + 5 * MiB],
        )
        parts.append({"PartNumber": n, "ETag": answer["ETag"]})
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )


# -- Swift with short-lived tokens ------------------------------------------------------------


class ShortTokenSwift(SwiftServer):
    """The test Swift whose tempauth tokens live :attr:`token_life_s` seconds (tempauth's
    ``token_life``), so that a copy of a few seconds sees its token expire."""

    token_life_s = 1

    def _write_configs(self) -> None:
        super()._write_configs()
        conf = self.swift_dir / "proxy-server.conf"
        section = "[filter:tempauth]\nuse = egg:swift#tempauth\n"
        text = conf.read_text()
        assert section in text, "the tempauth section moved: update ShortTokenSwift"
        conf.write_text(text.replace(section, f"{section}token_life = {self.token_life_s}\n"))


# -- the fleet ------------------------------------------------------------------------------


@dataclass
class FaultFleet:
    """Real ``mover worker`` processes on a private Redis, kept at ``size`` live workers:
    a fault may kill one, and :meth:`ensure` starts a replacement before the next fault."""

    fleet: Fleet
    proxy: Any
    pace: Pace
    client: Any
    bucket: str
    size: int = 2
    live: list[Worker] = field(default_factory=list)
    starting: list[Worker] = field(default_factory=list)
    started: int = 0
    jobs: Any = None

    @property
    def env(self) -> dict[str, str]:
        return self.fleet.env

    @property
    def folder(self) -> Path:
        return self.fleet.folder

    def reset(self, seed: int) -> None:
        """Before a fault: no proxy rule, no pacing, the workers all there."""
        self.proxy.reseed(seed)
        self.pace.off()
        self.ensure()

    def ensure(self, wait: bool = True) -> None:
        """Replace dead workers; with ``wait``, until every worker is ready. Without, the
        replacements start while the job goes on, and the next ``ensure`` waits for them."""
        for w in list(self.live):
            if w.proc.poll() is not None:
                self.live.remove(w)
        while len(self.live) < self.size:
            self.started += 1
            w = self.fleet.start_worker(f"fw{self.started}")
            self.live.append(w)
            self.starting.append(w)
        if wait and self.starting:
            self.fleet.wait_ready(*[w for w in self.starting if w in self.live], timeout_s=60)
            self.starting.clear()

    def replace(self, worker: Worker) -> None:
        """Stop a worker (SIGKILL) and start another in its place."""
        worker.kill(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.proc.wait(10)
        self.ensure()

    def pids(self) -> dict[int, Worker]:
        """Every process of the live workers (main and pool children) -> its worker."""
        out = {}
        for w in self.live:
            out[w.proc.pid] = w
            for child in w.children():
                out[child] = w
        return out

    def active(self, job_id: str, timeout_s: float = 1.0) -> list[tuple[Worker, int, str]]:
        """Tasks of ``job_id`` running now: (worker, pool child pid, task name)."""
        from celery import Celery

        app = Celery(broker=self.env["MOVER_BROKER_URL"])
        try:
            replies = app.control.inspect(timeout=timeout_s).active() or {}
        finally:
            with contextlib.suppress(Exception):
                app.close()
        pids = self.pids()
        found = []
        for tasks in replies.values():
            for task in tasks:
                args = task.get("args")
                if job_id in json.dumps(args) and task.get("worker_pid") in pids:
                    pid = int(task["worker_pid"])
                    found.append((pids[pid], pid, str(task.get("name"))))
        return found

    def ping(self, timeout_s: float = 2.0) -> set[str]:
        """Names of workers that answer a broadcast ping."""
        from celery import Celery

        app = Celery(broker=self.env["MOVER_BROKER_URL"])
        try:
            replies = app.control.inspect(timeout=timeout_s).ping() or {}
        except Exception:
            return set()
        finally:
            with contextlib.suppress(Exception):
                app.close()
        return {name.split("@")[0] for name in replies}

    def job(self, job_id: str) -> Any:
        """The job's record in Redis, or None (no such job, or Redis restarting: callers
        poll again). One job store for all polls: each holds a connection pool."""
        if self.jobs is None:
            self.jobs = self.fleet.jobs()
        try:
            return self.jobs.get(job_id)
        except Exception:
            return None

    def settle(self, job_id: str, timeout_s: float) -> Any:
        """The job once final (within ``timeout_s``), else its record as it stands."""
        final = wait_until(
            lambda: (j := self.job(job_id)) is not None and j.state in FINAL and j, timeout_s, 0.2
        )
        return final or self.job(job_id)


#: Seconds a fleet job may take to settle after a fault before the harness resumes it.
SETTLE_S = 30.0


def fleet_outcome(fleet: FaultFleet, job_id: str, folder: Path, fault: Fault) -> Any:
    """The fleet job once it settled; one that did not within :data:`SETTLE_S` is resumed
    (``mover resume``, allowed for a resumable job) and given as long again."""
    job = fleet.settle(job_id, SETTLE_S)
    if job is not None and job.state in FINAL:
        return job
    state = None if job is None else job.state
    detail = "" if job is None else f", item {item_state(job)}, {chunks_done(job)} chunks done"
    out = run(fleet.env, folder, "resume", job_id, "--no-wait", timeout_s=60)
    fault.notes.append(f"{STUCK}: still {state} after {SETTLE_S:.0f} s{detail}; resumed")
    if out.returncode != 0:
        fault.notes.append(f"mover resume exited {out.returncode}: {out.stderr.strip()[-300:]}")
    return fleet.settle(job_id, SETTLE_S)


def submit(fleet: FaultFleet, folder: Path, *args: str) -> str:
    """``mover copy ARGS --executor celery --detach``: the job id it prints."""
    out = run(fleet.env, folder, "copy", *args, "--executor", "celery", "--detach", timeout_s=60)
    assert out.returncode == 0, f"submitting failed: {out.stderr}"
    return out.stdout.strip().splitlines()[-1]
