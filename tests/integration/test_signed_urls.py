"""A signed URL as the source of an embedded copy: its credential is used (the server sees
it) and written nowhere: not in the job records (the SQLite files, scanned byte by byte), not
in ``mover jobs``/``status``/``--json``, not in the log (``--debug``: urllib3 logs every
request's path and query). A resumed job asks for the URL again.

A real HTTP server on loopback (tests/httpserver.py); ``mover`` runs as a subprocess, as a
user runs it. The fleet's refusal of such sources is in test_fleet_faults.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.httpserver import HttpServer

pytestmark = [pytest.mark.integration]

MiB = 1 << 20
MOVER = [sys.executable, "-m", "mover.cli.main"]
#: The credentials of the signed URL; none may appear anywhere mover writes.
SECRETS = ("AKIASECRETCREDENTIAL", "5ecre7s1gnature0123456789abcdef", "sessiontokenSECRET")


def signed(url: str) -> str:
    return (
        f"{url}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={SECRETS[0]}%2F20260101"
        f"&X-Amz-Expires=3600&X-Amz-Signature={SECRETS[1]}&X-Amz-Security-Token={SECRETS[2]}"
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(state: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MOVER_STATE_DIR": str(state),
        "MOVER_CONFIG": str(state / "none.toml"),
    }
    env.pop("MOVER_BROKER_URL", None)
    return subprocess.run([*MOVER, *args], env=env, capture_output=True, text=True, timeout=120)


def assert_no_secret(*texts: str, folder: Path | None = None) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret} in: {text[:500]}"
    if folder is not None:
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for secret in SECRETS:
                    assert secret.encode() not in data, f"{secret} in {path}"


@pytest.fixture
def served(tmp_path: Path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "disk.img").write_bytes(os.urandom(3 * MiB + 11))
    with HttpServer(root) as server:
        yield server


def test_signed_source_is_used_and_recorded_redacted(served: HttpServer, tmp_path: Path):
    state = tmp_path / "state"
    url = signed(served.url("disk.img"))
    dst = tmp_path / "out.img"
    out = run(state, "--debug", "copy", url, str(dst), "--chunk-size", "1MiB", "--json")
    assert out.returncode == 0, out.stderr
    assert sha256(dst) == sha256(served.root / "disk.img")
    # The server was asked with the credential: the real URL was used to read.
    assert any(SECRETS[1] in path for _, path, _ in served.requests)
    summary = json.loads(out.stdout)
    assert "X-Amz-Signature=REDACTED" in summary["source"]
    job_id = summary["id"]
    listed, status = run(state, "jobs"), run(state, "status", job_id)
    as_json = run(state, "status", job_id, "--json")
    assert "X-Amz-Signature=REDACTED" in status.stdout
    assert_no_secret(
        out.stdout, out.stderr, listed.stdout, status.stdout, as_json.stdout, folder=state
    )


def test_resume_of_a_signed_source_asks_for_the_url(served: HttpServer, tmp_path: Path):
    """The copy fails half-way (the server loses the object); ``mover resume`` says it needs
    the URL again and how; a wrong URL is refused; the right one finishes the job."""
    state = tmp_path / "state"
    url = signed(served.url("disk.img"))
    dst = tmp_path / "out.img"
    served.gone_after = 2 * MiB  # ranged reads from 2 MiB on answer 404
    out = run(state, "copy", url, str(dst), "--chunk-size", "1MiB", "--streams", "1")
    assert out.returncode == 1
    job_id = out.stderr.strip().rsplit(" ", 1)[-1]
    served.gone_after = None
    again = run(state, "resume", job_id)
    assert again.returncode == 2
    assert f"mover resume {job_id} --source" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    wrong = run(state, "resume", job_id, "--source", signed(served.url("other.img")))
    assert wrong.returncode == 2 and "is not the source of job" in wrong.stderr
    done = run(state, "resume", job_id, "--source", url)
    assert done.returncode == 0, done.stderr
    assert sha256(dst) == sha256(served.root / "disk.img")
    assert_no_secret(out.stderr, again.stderr, wrong.stderr, done.stderr, folder=state)
