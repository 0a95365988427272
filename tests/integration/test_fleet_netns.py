"""Workers on several hosts: three network namespaces, one host cut off in the middle of a job.

Namespace ``S`` (the services) runs the fleet's Redis and a throttled HTTP source; namespaces
``H1`` and ``H2`` (two worker hosts) each reach ``S`` over a veth pair of their own, on
private addresses that exist only inside these namespaces (10.77.1.0/24, 10.77.2.0/24, and
the services' own 10.77.0.1 on their loopback, routed to from both hosts):
nothing of the machine's own network is touched, and every namespace is deleted at the end.
The hosts share the file system (the destination is a file), as hosts mounting one NFS export
would.

The fault: once H2's worker has run chunks of a job, its link goes down (``ip link set ...
down`` inside H2), so that it holds its running chunks without a word to Redis. Its chunks come
back to H1's worker after the visibility timeout; the job completes, verified by sha256. Then
the link comes back with H2's stale chunk in hand: the object is still committed exactly once
and its bytes do not change. Last, the autoscale controller's ``command`` launcher starts a
worker on H2 with ``ip netns exec`` and stops it by name.

The destination is ``store:shared/...``, a store that the caller adds to a PostgreSQL
catalogue running in ``S`` (``MOVER_CATALOGUE_URL``): each worker host has a state directory
of its own, so both resolve the store from that one database (issue 12: workers in two
namespaces share one catalogue).

Needs root, ``ip`` (iproute2) and PostgreSQL's server binaries; skipped, with the reason, where
namespaces cannot be made or no PostgreSQL server is installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_fleet import MOVER, ROOT, Worker, random_file, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.celery, pytest.mark.slow]

MiB = 1 << 20
REDIS_PORT = 6390
HTTP_PORT = 8090
POSTGRES_PORT = 5433
#: The services' address, on the loopback of their namespace; each worker host routes to it
#: through its own link (so a source URL planned on one host is valid on the other).
SERVICE = "10.77.0.1"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _netns_problem() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is missing"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"mvprobe{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"ip netns add fails here: {exc.stderr.decode().strip()}"
    _ip("netns", "del", probe)
    return None


class Hosts:
    """The three namespaces and the processes started in them (stopped by PID)."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:5]
        self.ns = {name: f"mv{tag}{name}" for name in ("s", "h1", "h2")}
        self.links = {"h1": f"mv{tag}1", "h2": f"mv{tag}2"}  # the worker host's end
        self.procs: list[subprocess.Popen] = []

    def create(self) -> None:
        for ns in self.ns.values():
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", self.ns["s"], "addr", "add", f"{SERVICE}/32", "dev", "lo")
        for index, host in enumerate(("h1", "h2"), 1):
            here, there = self.links[host], f"{self.links[host]}s"
            _ip("link", "add", there, "netns", self.ns["s"], "type", "veth",
                "peer", "name", here, "netns", self.ns[host])  # fmt: skip
            _ip("-n", self.ns["s"], "addr", "add", f"10.77.{index}.1/24", "dev", there)
            _ip("-n", self.ns[host], "addr", "add", f"10.77.{index}.2/24", "dev", here)
            _ip("-n", self.ns["s"], "link", "set", there, "up")
            _ip("-n", self.ns[host], "link", "set", here, "up")
            _ip("-n", self.ns[host], "route", "replace", f"{SERVICE}/32", "via", f"10.77.{index}.1")

    def link(self, host: str, up: bool) -> None:
        """Cut a worker host off (its link down) or bring it back (with its route to the
        services, which the kernel dropped with the link)."""
        _ip("-n", self.ns[host], "link", "set", self.links[host], "up" if up else "down")
        if up:
            index = 1 if host == "h1" else 2
            _ip("-n", self.ns[host], "route", "replace", f"{SERVICE}/32", "via", f"10.77.{index}.1")

    def run(self, host: str, argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[host], *argv],
            env=env,
            stdout=open(log, "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        self.procs.append(proc)
        return proc

    def call(self, host: str, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ip", "netns", "exec", self.ns[host], *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )

    def destroy(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.wait(10)
        for ns in self.ns.values():
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", ns)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    problem = _netns_problem()
    if problem is not None:
        pytest.skip(f"cannot make network namespaces: {problem}")
    made = Hosts()
    try:
        made.create()
        yield made
    finally:
        made.destroy()


def _postgres_bin() -> Path | None:
    """The directory of PostgreSQL's server binaries (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if found:
        return found[-1].parent
    which = shutil.which("postgres")
    return Path(which).parent if which else None


@pytest.fixture
def postgres_dir() -> Iterator[Path]:
    """A data directory PostgreSQL's own user may use (it refuses to run as root), outside
    pytest's private temporary folders; removed at the end."""
    import pwd
    import tempfile

    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user to run a PostgreSQL server as")
    folder = Path(tempfile.mkdtemp(prefix="mover-netns-pg-"))
    os.chmod(folder, 0o755)
    data = folder / "data"
    data.mkdir()
    os.chown(data, user.pw_uid, user.pw_gid)
    try:
        yield data
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def start_postgres(hosts: Hosts, data: Path, log: Path) -> str:
    """initdb and start PostgreSQL in the services' namespace on SERVICE:POSTGRES_PORT, trust
    authentication for the worker hosts' subnets; return the catalogue URL."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL's server binaries are not installed")
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(bindir / "initdb"), "-D", str(data),
         "--auth=trust", "-U", "postgres"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with open(data / "pg_hba.conf", "a") as hba:
        hba.write("host all all 10.77.0.0/16 trust\n")
    hosts.run(
        "s",
        ["runuser", "-u", "postgres", "--", str(bindir / "postgres"), "-D", str(data),
         "-c", f"listen_addresses={SERVICE}", "-p", str(POSTGRES_PORT),
         "-c", f"unix_socket_directories={data}", "-c", "fsync=off"],
        log,
        dict(os.environ),
    )  # fmt: skip
    return f"postgresql://postgres@{SERVICE}:{POSTGRES_PORT}/postgres"


#: Prints the names of the workers that answer a ping (run on a worker host).
PING_SCRIPT = """
from mover.executors.celery import get_app
print(" ".join(sorted(name for reply in get_app().control.ping(timeout=2) for name in reply)))
"""


def launched_worker(hosts: Hosts, env: dict[str, str], folder: Path) -> None:
    """Start one worker in H2 through :class:`CommandLauncher` and stop it through it: the
    fleet's ping sees ``NAME@h2`` while it runs and not after; its PID is gone at the end."""
    from mover.workers.launchers.command import CommandLauncher

    pidfile = folder / "launched.pid"
    mover = f"{sys.executable} -m mover.cli.main"
    launcher = CommandLauncher(
        start_command=(
            f"ip netns exec {hosts.ns['h2']} {mover} worker -c 1 -n {{name}}@h2 --detach "
            f"--pidfile {pidfile} --logfile {folder / 'launched.log'}"
        ),
        stop_command=(
            f"ip netns exec {hosts.ns['h1']} {sys.executable} -m celery -A mover.workers.app "
            "control shutdown -d {name}@h2"
        ),
        state_dir=folder / "launcher",
        env=env,
    )
    pid = 0
    try:
        (name,) = launcher.start(1)
        pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "pid"))

        def pinged() -> str:
            out = hosts.call("h1", [sys.executable, "-c", PING_SCRIPT], env)
            return out.stdout if out.returncode == 0 else ""

        log = folder / "launched.log"
        wait_for(lambda: log.exists() and " ready." in log.read_text(), 60, f"{name} ready", 0.3)
        assert f"{name}@h2" in pinged()
        assert launcher.stop(1) == [name]
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 60, f"{name} to stop", poll_s=0.5)
        assert f"{name}@h2" not in pinged() and launcher.running() == []
    finally:
        if pid and Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


#: The throttled, ranged HTTP source of test_fleet, run inside the services' namespace.
HTTP_SCRIPT = """
import sys, threading
from http.server import ThreadingHTTPServer
from tests.integration.test_fleet import _Throttled
server = ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), _Throttled)
server.daemon_threads = True
server.root, server.rate, server.seen = sys.argv[1], float(sys.argv[3]), set()
server.serve_forever()
"""

#: Prints the commits of object 0 of a job, read from the job store (run on a worker host).
COMMITS_SCRIPT = """
import sys
from mover.jobstores.redis import RedisJobStore
print(RedisJobStore().commits(sys.argv[1], 0))
"""


def test_host_cut_off_mid_job_completes_verified_and_commits_once(
    hosts: Hosts, postgres_dir: Path, tmp_path: Path
) -> None:
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        pytest.skip("redis-server is missing")
    source_dir = tmp_path / "source"
    source_dir.mkdir()
    source = random_file(source_dir / "cut.bin", 24 * MiB)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    hosts.run(
        "s",
        [redis_bin, "--port", str(REDIS_PORT), "--bind", "0.0.0.0", "--protected-mode", "no",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        tmp_path / "redis.log",
        dict(os.environ),
    )  # fmt: skip
    catalogue = start_postgres(hosts, postgres_dir, tmp_path / "postgres.log")
    hosts.run(
        "s",
        [sys.executable, "-c", HTTP_SCRIPT, str(source_dir), str(HTTP_PORT), str(MiB)],
        tmp_path / "http.log",
        {**os.environ, "PYTHONPATH": str(ROOT)},
    )

    def env(host: str) -> dict[str, str]:
        return {
            **os.environ,
            "MOVER_BROKER_URL": f"redis://{SERVICE}:{REDIS_PORT}/0",
            "MOVER_STATE_DIR": str(tmp_path / f"state-{host}"),
            "MOVER_CONFIG": str(tmp_path / "config.toml"),
            "MOVER_VISIBILITY_TIMEOUT_S": "8",
            "MOVER_RESTORE_INTERVAL_S": "2",
            "MOVER_CHUNK_RETRIES": "3",
            "MOVER_CATALOGUE_URL": catalogue,
            "PYTHONPATH": str(ROOT),
        }

    # The caller adds the destination store to the catalogue in S (from H1, once it answers).
    def add_store() -> bool:
        out = hosts.call("h1", [*MOVER, "stores", "add", "shared", f"file://{out_dir}/"], env("h1"))
        assert "cannot open the catalogue" in out.stderr or out.returncode == 0, out.stderr
        return out.returncode == 0

    wait_for(add_store, 60, "the catalogue in S to answer", poll_s=0.5)

    workers = {}
    for host in ("h1", "h2"):
        log = tmp_path / f"{host}.log"
        argv = [*MOVER, "worker", "-c", "2", "--pool", "prefork", "-n", f"{host}@%h"]
        workers[host] = Worker(host, hosts.run(host, argv, log, env(host)), log)
    for worker in workers.values():
        wait_for(lambda w=worker: " ready." in w.text(), 60, f"{worker.name} ready", 0.2)

    # The caller submits from H1 (any host that reaches Redis and the source).
    url = f"http://{SERVICE}:{HTTP_PORT}/cut.bin"
    dst = out_dir / "cut.bin"
    submitted = hosts.call(
        "h1",
        [
            *MOVER,
            "copy",
            url,
            "store:shared/cut.bin",
            "--chunk-size",
            "1MiB",
            "--executor",
            "celery",
            "--detach",
        ],
        env("h1"),
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    h2 = workers["h2"]
    wait_for(
        lambda: re.search(rf"job {job_id} object 0 chunk \d+ done", h2.text()), 60, "H2's chunks"
    )
    hosts.link("h2", up=False)  # H2 is cut off, holding its running chunks
    cut_at = len(h2.text())

    def status() -> dict[str, Any] | None:
        out = hosts.call("h1", [*MOVER, "status", job_id, "--json"], env("h1"))
        if out.returncode != 0:
            return None
        record = json.loads(out.stdout)
        return record if record.get("state") in ("done", "failed", "cancelled") else None

    final = wait_for(status, 120, "the job to finish without H2", poll_s=1.0)
    assert final["state"] == "done", final
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == digest
    # H1 ran chunks that had been H2's: redelivered after the visibility timeout.
    redelivered = rf"job {job_id} object 0 chunk \d+ done.*\(redelivered\)"
    assert re.search(redelivered, workers["h1"].text())

    hosts.link("h2", up=True)  # H2 comes back with its stale chunk in hand
    wait_for(
        lambda: "Redis answers again" in h2.text()[cut_at:] or h2.proc.poll() is not None,
        90,
        f"H2 back on Redis\n{h2.text()[cut_at:][-2000:]}",
        poll_s=0.5,
    )
    time.sleep(3)  # its stale chunk ends (done, failed or skipped) and records what it may
    commits = hosts.call("h1", [sys.executable, "-c", COMMITS_SCRIPT, job_id], env("h1"))
    assert commits.returncode == 0, commits.stderr
    assert commits.stdout.strip() == "1", f"committed {commits.stdout.strip()} times"
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == digest
    assert not [p.name for p in out_dir.iterdir() if ".mover-" in p.name]
    # Both hosts resolved store:shared from PostgreSQL: neither made a catalogue of its own.
    for host in ("h1", "h2"):
        assert not (tmp_path / f"state-{host}" / "catalogue.sqlite3").exists()
    assert h2.proc.poll() is None, f"H2's worker did not come back:\n{h2.text()[cut_at:][-2000:]}"

    # The controller's command launcher starts a worker on another host (H2's namespace, with
    # `ip netns exec`) and stops it by name; the fleet sees it arrive and leave.
    launched_worker(hosts, env("h2"), tmp_path)
