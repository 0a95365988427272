"""The ``local`` launcher: ``mover worker`` processes on this host, started and stopped on demand.

Each worker is started in its own session (so its own process group: the celery main process
and its pool children), named ``auto-<hex>@<host>``, with its output in
``<state dir>/<name>.log``. What it started is written to a state file
(``<state dir>/launcher-local.json``: name, PID, the process's start time from ``/proc``),
so that:

- a restarted controller adopts the workers its predecessor started (and stops them when the
  fleet is idle, or at its own exit);
- a PID reused by an unrelated process after a worker died is never signalled: a PID counts
  only while its start time matches the one recorded.

Stopping is graceful: SIGTERM to the whole process group (celery's warm shutdown lets running
chunks finish), then SIGKILL to the group after ``grace_s``; chunks are acknowledged late, so
a killed chunk comes back to another worker. Killing the group, not the PID, is what leaves no
orphaned pool process behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from mover.errors import UsageError
from mover.launcher import Launcher

log = logging.getLogger("mover.autoscale.launcher")

#: The worker command unless told otherwise; ``{name}`` is the worker's node name.
DEFAULT_COMMAND = (sys.executable, "-m", "mover.cli.main", "worker", "-n", "{name}")


def default_state_dir() -> Path:
    """``$MOVER_STATE_DIR/launcher`` (or the user state dir's)."""
    base = os.environ.get("MOVER_STATE_DIR")
    if base:
        return Path(base) / "launcher"
    import platformdirs

    return Path(platformdirs.user_state_dir("mover")) / "launcher"


def read_state(path: Path, launcher: str) -> Any:
    """What a launcher's state file holds (a JSON list of what it started); none when the
    file does not exist, or cannot be read (logged): the launcher starts afresh rather than
    stopping the controller."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("%s launcher: unreadable state file %s: %s", launcher, path, exc)
        return []


def write_state(path: Path, entries: list[Any]) -> None:
    """Replace a launcher's state file whole (through a rename: a crash leaves the old file
    or the new one, never half of one)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=1))
    os.replace(tmp, path)


def process_start_time(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/PID/stat`` field
    22), or None when there is no such live process. Together with the PID it names one
    process for good: a reused PID has another start time."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        if not Path("/proc/self/stat").exists():  # no procfs: the PID alone must do
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return None
            except PermissionError:
                return 0
            return 0
        return None
    fields = raw.rpartition(")")[2].split()
    if not fields or fields[0] in ("Z", "X"):
        return None  # a zombie is dead, only not yet reaped
    return int(fields[19])


def group_alive(pgid: int) -> bool:
    """Whether any process of process group ``pgid`` is still running (zombies, dead but
    not yet reaped by their parent, do not count)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


@dataclass
class Started:
    """One worker the launcher started (a line of the state file)."""

    name: str
    pid: int
    start_time: int | None
    log: str = ""
    started: float = 0.0


class LocalLauncher(Launcher):
    """Starts and stops ``mover worker`` processes on this host.

    Parameters:
        state_dir: where the state file and the workers' logs go (default
            ``$MOVER_STATE_DIR/launcher``).
        concurrency: the pool size a new worker starts with (``-c``); the controller grows it.
        queues: the queues new workers consume (``-Q``); default ``mover worker``'s.
        command: the worker command, a list whose items may hold ``{name}``; default
            ``mover worker -n {name}``. ``-c``, ``--pool prefork`` and ``-Q`` are appended
            when it is the default command.
        extra_args: more arguments for the worker command.
        env: extra environment of the workers (on top of this process's).
        grace_s: seconds between SIGTERM and SIGKILL when stopping.
        prefix: the first part of the names of the workers started.
        host: the part after ``@`` (default this host's name).
    """

    name = "local"

    def __init__(
        self,
        state_dir: str | Path | None = None,
        concurrency: int = 1,
        queues: Sequence[str] | None = None,
        command: Sequence[str] | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        grace_s: float = 30.0,
        prefix: str = "auto",
        host: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise UsageError(f"local launcher: concurrency must be >= 1, got {concurrency}")
        if grace_s < 0:
            raise UsageError(f"local launcher: grace_s must be >= 0, got {grace_s}")
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.concurrency = int(concurrency)
        self.queues = list(queues or [])
        self.command = list(command) if command else None
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.grace_s = float(grace_s)
        self.prefix = prefix
        self.host = host or socket.gethostname()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def state_file(self) -> Path:
        return self.state_dir / "launcher-local.json"

    # -- the state file ---------------------------------------------------------------------

    def _load(self) -> list[Started]:
        return [Started(**entry) for entry in read_state(self.state_file, self.name)]

    def _save(self, entries: list[Started]) -> None:
        write_state(self.state_file, [asdict(e) for e in entries])

    def _reap(self) -> None:
        """Collect the exit status of children that ended (no zombies left behind)."""
        for pid, proc in list(self._procs.items()):
            if proc.poll() is not None:
                del self._procs[pid]

    def _alive(self, entry: Started) -> bool:
        now = process_start_time(entry.pid)
        return now is not None and (entry.start_time is None or now == entry.start_time)

    def _live(self) -> list[Started]:
        self._reap()
        entries = self._load()
        live = [e for e in entries if self._alive(e)]
        if len(live) != len(entries):
            gone = sorted({e.name for e in entries} - {e.name for e in live})
            log.info("local launcher: worker(s) gone: %s", ", ".join(gone))
            self._save(live)
        return live

    # -- the contract -----------------------------------------------------------------------

    def argv(self, name: str) -> list[str]:
        """The command that starts worker ``name``."""
        if self.command is None:
            argv = [part.format(name=name) for part in DEFAULT_COMMAND]
            argv += ["-c", str(self.concurrency), "--pool", "prefork"]
            if self.queues:
                argv += ["-Q", ",".join(self.queues)]
        else:
            argv = [part.format(name=name) for part in self.command]
        return argv + self.extra_args

    def start(self, n: int = 1) -> list[str]:
        entries = self._live()
        started: list[str] = []
        env = {**os.environ, **self.env}
        for _ in range(n):
            name = f"{self.prefix}-{uuid.uuid4().hex[:6]}@{self.host}"
            log_path = self.state_dir / f"{name.partition('@')[0]}.log"
            out: IO[bytes]
            try:
                with open(log_path, "ab") as out:
                    proc = subprocess.Popen(
                        self.argv(name),
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                        start_new_session=True,  # its own process group: stopped as a whole
                    )
            except OSError as exc:
                log.error("local launcher: cannot start a worker: %s", exc)
                break
            self._procs[proc.pid] = proc
            entries.append(
                Started(name, proc.pid, process_start_time(proc.pid), str(log_path), time.time())
            )
            self._save(entries)
            log.info("local launcher: started worker %s (pid %d)", name, proc.pid)
            started.append(name)
        return started

    def running(self) -> list[str]:
        return [e.name for e in self._live()]

    def pids(self) -> dict[str, int]:
        """``name -> PID`` of the workers running (tests, ``mover autoscale`` logs)."""
        return {e.name: e.pid for e in self._live()}

    def stop(self, n: int = 1, prefer: Sequence[str] = ()) -> list[str]:
        entries = self._live()
        if n <= 0 or not entries:
            return []
        wanted = [p for p in prefer if any(e.name == p for e in entries)]
        newest_first = [e.name for e in sorted(entries, key=lambda e: -e.started)]
        order = list(dict.fromkeys([*wanted, *newest_first]))[:n]
        victims = [e for e in entries if e.name in order]
        self._signal(victims, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline and any(self._running(e) for e in victims):
            self._reap()
            time.sleep(0.1)
        stubborn = [e for e in victims if self._running(e)]
        if stubborn:
            log.warning(
                "local launcher: %s did not stop within %g s: SIGKILL",
                ", ".join(e.name for e in stubborn),
                self.grace_s,
            )
            self._signal(stubborn, signal.SIGKILL)
            end = time.monotonic() + 5
            while time.monotonic() < end and any(self._running(e) for e in stubborn):
                self._reap()
                time.sleep(0.05)
        self._reap()
        remaining = [e for e in self._load() if e.name not in order]
        self._save(remaining)
        for e in victims:
            log.info("local launcher: stopped worker %s (pid %d)", e.name, e.pid)
        return [e.name for e in victims]

    def _running(self, entry: Started) -> bool:
        """The worker or any process of its group (pool children) still runs."""
        self._reap()
        return self._alive(entry) or group_alive(entry.pid)

    def _signal(self, entries: list[Started], sig: int) -> None:
        for e in entries:
            if not self._alive(e) and not group_alive(e.pid):
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                # The worker is its session's leader: its PID is its process group's id.
                os.killpg(e.pid, sig)

    def describe(self) -> dict[str, Any]:
        return {"state_file": str(self.state_file), "workers": self.pids()}
