"""What a writer killed with ``kill -9`` leaves is removed by the next process of the same host,
and only that: a temporary file of the file store, a repository lease. Real processes, really
killed; a live writer's file, another host's file and an older name stay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mover import resolve
from mover.hostid import HOST_TAG, gone_here, running
from mover.providers.posix import TEMP_MARK, TEMP_SUFFIX

ROOT = Path(__file__).resolve().parents[2]


def _killed_writer(folder: Path) -> int:
    """A process that opens a writer in ``folder``, writes a part and is killed with SIGKILL."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from mover import resolve
        from mover.digests import digest
        store, loc = resolve.open_location({str(folder / "big.bin")!r})
        w = store.open_writer(loc.full_key, 8)
        w.write_part(0, 0, memoryview(b"12345678"), digest("md5", b"12345678"))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=dict(os.environ))
    assert proc.returncode == -signal.SIGKILL
    return proc.returncode


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if TEMP_MARK in p.name)


def test_the_temporary_file_of_a_killed_writer_is_swept(tmp_path: Path) -> None:
    sub = tmp_path / "data" / "ab"
    sub.mkdir(parents=True)
    _killed_writer(sub)
    [dead] = _temps(sub)
    assert f"{TEMP_MARK}{HOST_TAG}-" in dead
    store, loc = resolve.open_location(str(tmp_path / "data") + "/")
    live = store.open_writer(loc.full_key + "ab/live.bin", 8)  # this process: alive
    other = sub / f".x{TEMP_MARK}00000000-1-0{TEMP_SUFFIX}"  # another host's writer
    older = sub / f".y{TEMP_MARK}1-0{TEMP_SUFFIX}"  # a name from before host tags
    other.write_bytes(b"o")
    older.write_bytes(b"o")
    assert store.sweep_abandoned(loc.full_key) == 1
    assert dead not in _temps(sub)
    assert sorted(_temps(sub)) == sorted([Path(live.temp).name, other.name, older.name])
    live.abort()


def test_a_dead_lease_of_this_host_goes_when_a_lease_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mover import catalogue as cat
    from mover.repository import keys, locks
    from mover.repository.layout import LOCKS
    from mover.repository.repo import Repository

    monkeypatch.setenv("MOVER_TEST_REPO_KEY", "unit passphrase")
    cat.add_store(
        "leases", f"file://{tmp_path}/repo/", options={keys.KEY_ENV: "MOVER_TEST_REPO_KEY"}
    )
    Repository.init("leases")
    script = textwrap.dedent(
        """
        import os, signal
        from mover.repository import locks
        from mover.repository.repo import Repository
        locks.Lease(Repository.open("leases"), "backup", "killed").acquire()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env)
    assert proc.returncode == -signal.SIGKILL
    repo = Repository.open("leases")
    [dead] = locks.read_locks(repo)
    assert dead.owner == "killed" and gone_here(dead.host, dead.boot, dead.pid)
    with locks.Lease(repo, "backup", "next") as lease:
        assert [x.owner for x in locks.read_locks(repo)] == ["next"]
        assert running(os.getpid()) and lease.name
    assert locks.read_locks(repo) == []
    assert not [p for p in (tmp_path / "repo").rglob("*") if p.is_file() and LOCKS in str(p)]
