"""The CLI's conventions (issue 15, rclone, the aws CLI and Celery's CLI as the models): global
options before or after the command, a closed pipe ends quietly, documented exit codes, binary
units, help that renders, ``--detach`` only where a job can outlive the command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mover.cli import main as cli_main
from mover.errors import EXIT_NOT_FOUND, EXIT_USAGE, ObjectNotFound

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        (["copy", "a", "b", "--debug"], ["--debug", "copy", "a", "b"]),
        (["--json", "jobs"], ["jobs", "--json"]),
        (["-q", "copy", "a", "b"], ["copy", "-q", "a", "b"]),
        (["--log-format", "json", "jobs", "--debug"], ["--debug", "--log-format", "json", "jobs"]),
        (["--debug", "jobs"], ["--debug", "jobs"]),
        (["copy", "a", "--", "--debug"], ["copy", "a", "--", "--debug"]),
        (["--json", "template", "list"], ["--json", "template", "list"]),  # a group: untouched
    ],
)
def test_global_options_go_before_or_after_the_command(given: list[str], meant: list[str]):
    assert cli_main.reorder(given) == meant


def test_debug_after_the_command_shows_the_traceback(tmp_path: Path):
    argv = ["copy", str(tmp_path / "missing"), str(tmp_path / "x"), "--debug"]
    try:
        with pytest.raises(ObjectNotFound):  # --debug: the error itself, not one line
            cli_main.cli(args=cli_main.reorder(argv), standalone_mode=False)
    finally:
        cli_main._debug = False


def _mover(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mover.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_a_closed_pipe_ends_quietly(tmp_path: Path):
    """``mover jobs | head -1`` exits 0 and prints no error, however long the list."""
    from mover.jobs import Job
    from mover.jobstores.sqlite import SqliteJobStore

    store = SqliteJobStore()
    for n in range(1200):  # far more than a pipe's buffer
        store.create(Job(id=f"job{n:05d}", source=f"file:///s/{n}", destination=f"file:///d/{n}"))
    shell = f"set -o pipefail; {sys.executable} -m mover.cli.main jobs -n 5000 | head -1"
    out = subprocess.run(
        ["bash", "-c", shell], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert len(out.stdout.splitlines()) == 1


def test_exit_codes(tmp_path: Path):
    src = tmp_path / "small.bin"
    src.write_bytes(b"twelve bytes")
    unknown = _mover("status", "ffffffffffff")
    assert unknown.returncode == EXIT_NOT_FOUND, unknown.stderr
    detached = _mover("copy", str(src), str(tmp_path / "d"), "--detach")
    assert detached.returncode == EXIT_USAGE
    assert "--detach leaves a job to the fleet" in detached.stderr
    assert len(detached.stderr.strip().splitlines()) == 1
    bad = _mover("copy", str(src), str(tmp_path / "d"), "--streams", "0")
    assert bad.returncode == EXIT_USAGE
    assert bad.stderr.strip() == "mover: option streams: from 1 to 256 (got 0)"
    assert "4 not found" in (cli_main.__doc__ or "")


def test_a_small_file_is_one_chunk_of_its_size(tmp_path: Path):
    src = tmp_path / "small.bin"
    src.write_bytes(b"twelve bytes")
    result = CliRunner().invoke(cli_main.cli, ["copy", str(src), str(tmp_path / "d"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "1 chunk(s) of 12 B" in result.output


def test_help_renders_cleanly():
    for command in ("worker", "copy", "jobs"):
        result = CliRunner().invoke(cli_main.cli, [command, "--help"])
        assert result.exit_code == 0
        assert "``" not in result.output and "see below" not in result.output, command
