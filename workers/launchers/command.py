"""The ``command`` launcher: an operator's own commands start and stop workers anywhere.

This is the seed's "launch transfer VMs dynamically": mover does not know how to boot a VM in
your cloud, but you do. Give it a command that starts one worker and one that stops it::

    mover autoscale --strategy target-tracking --launcher command \\
        --start-command 'ssh mover@vm1 mover worker -n {name}@vm1 --detach' \\
        --stop-command  'ssh mover@vm1 celery -A mover.workers.app control shutdown -d {name}@vm1'

    --start-command 'openstack server create --flavor m1.large --image mover-worker \\
        --property mover_name={name} {name}'
    --stop-command  'openstack server delete --wait {name}'

Each command runs through the shell with ``{name}`` replaced by the worker's name (shell-quoted)
and ``MOVER_WORKER_NAME`` set in its environment. The started worker must join the fleet as
``mover worker -n {name}@<anything>``: that is how the controller sees it arrive and knows it
may stop it. A start command that exits non-zero counts as a failed start (logged, nothing
recorded); a stop command that fails is logged and the worker is forgotten all the same
(stop commands should be idempotent: "delete if it exists").

What was started is kept in ``<state dir>/launcher-command.json`` so that a restarted controller
still knows its workers. An optional ``--list-command`` prints the names of the workers that
really exist, one a line; with it, workers that vanished on their own are forgotten.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from mover.errors import UsageError
from mover.launcher import Launcher
from mover.workers.launchers.local import default_state_dir, read_state, write_state

log = logging.getLogger("mover.autoscale.launcher")


class CommandLauncher(Launcher):
    """Runs operator-given shell commands to start and stop workers.

    Parameters:
        start_command: starts one worker called ``{name}``; required.
        stop_command: stops the worker called ``{name}``; required.
        list_command: optional; prints the names of the workers that exist, one a line.
        state_dir: where ``launcher-command.json`` goes (default ``$MOVER_STATE_DIR/launcher``).
        timeout_s: longest a command may run (a VM boot can take minutes).
        prefix: the first part of the names given to new workers.
        env: extra environment for the commands.
    """

    name = "command"

    def __init__(
        self,
        start_command: str = "",
        stop_command: str = "",
        list_command: str | None = None,
        state_dir: str | Path | None = None,
        timeout_s: float = 600.0,
        prefix: str = "auto",
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not start_command or not stop_command:
            raise UsageError(
                "the command launcher needs --start-command and --stop-command "
                "(each may use {name}, the worker's name)"
            )
        if timeout_s <= 0:
            raise UsageError(f"command launcher: timeout_s must be > 0, got {timeout_s}")
        self.start_command = start_command
        self.stop_command = stop_command
        self.list_command = list_command or None
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.timeout_s = float(timeout_s)
        self.prefix = prefix
        self.env = dict(env or {})
        self.state_dir.mkdir(parents=True, exist_ok=True)

    @property
    def state_file(self) -> Path:
        return self.state_dir / "launcher-command.json"

    def _load(self) -> list[dict[str, object]]:
        data = read_state(self.state_file, self.name)
        return [e for e in data if isinstance(e, dict) and isinstance(e.get("name"), str)]

    def _save(self, entries: list[dict[str, object]]) -> None:
        write_state(self.state_file, entries)

    def _run(self, template: str, name: str | None, what: str) -> subprocess.CompletedProcess[str]:
        command = template.replace("{name}", shlex.quote(name)) if name else template
        env = {**os.environ, **self.env}
        if name:
            env["MOVER_WORKER_NAME"] = name
        log.info("command launcher: %s: %s", what, command)
        return subprocess.run(
            command,
            shell=True,
            env=env,
            capture_output=True,
            text=True,
            timeout=self.timeout_s,
            stdin=subprocess.DEVNULL,
        )

    def start(self, n: int = 1) -> list[str]:
        started: list[str] = []
        for _ in range(n):
            name = f"{self.prefix}-{uuid.uuid4().hex[:6]}"
            try:
                out = self._run(self.start_command, name, f"start {name}")
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.error("command launcher: start of %s failed: %s", name, exc)
                break
            if out.returncode != 0:
                _log_exit("start", name, out)
                break
            entries = self._load()
            entries.append({"name": name, "started": time.time()})
            self._save(entries)
            started.append(name)
        return started

    def running(self) -> list[str]:
        entries = self._load()
        if self.list_command:
            try:
                out = self._run(self.list_command, None, "list")
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.warning("command launcher: list failed: %s", exc)
                out = None
            if out is not None and out.returncode == 0:
                exists = {line.strip().partition("@")[0] for line in out.stdout.splitlines()}
                kept = [e for e in entries if e["name"] in exists]
                if len(kept) != len(entries):
                    self._save(kept)
                entries = kept
        return [str(e["name"]) for e in entries]

    def stop(self, n: int = 1, prefer: Sequence[str] = ()) -> list[str]:
        entries = self._load()
        names = [str(e["name"]) for e in entries]
        wanted = [p.partition("@")[0] for p in prefer]
        newest_first = [str(e["name"]) for e in sorted(entries, key=lambda e: -float(e["started"]))]  # type: ignore[arg-type]
        order = [x for x in dict.fromkeys([*wanted, *newest_first]) if x in names][: max(0, n)]
        stopped: list[str] = []
        for name in order:
            try:
                out = self._run(self.stop_command, name, f"stop {name}")
                if out.returncode != 0:
                    _log_exit("stop", name, out)
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.error("command launcher: stop of %s failed: %s", name, exc)
            stopped.append(name)
            self._save([e for e in self._load() if e["name"] != name])
        return stopped


def _log_exit(action: str, name: str, out: subprocess.CompletedProcess[str]) -> None:
    """Log a command that exited non-zero, with the end of what it printed."""
    log.error(
        "command launcher: %s of %s exited %d: %s",
        action,
        name,
        out.returncode,
        (out.stderr or out.stdout).strip()[-500:],
    )
