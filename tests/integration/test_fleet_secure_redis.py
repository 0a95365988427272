"""The fleet on a Redis a production deployment would run: TLS only and a password.

The Redis (broker, result backend and job records at once) has a CA and certificate made by
the test (:mod:`tests.secure_redis`), no plain port, and ``requirepass`` set to a planted
password. The fleet finds it the way an operator would configure it: the URL without its
password under ``[fleet]`` in the configuration file, the password in
``MOVER_BROKER_PASSWORD`` only. Real workers copy and cancel on it (redelivery after a kill
is Redis's own, tested in ``test_fleet.py``; TLS changes nothing there); then
the planted password is looked for, and must be absent, in every worker log, the output of
``mover jobs``/``status``/``copy``, ``mover metrics``' exposition, the dashboard's JSON,
Flower's broker page, and
every key and value in Redis. A wrong password and an unknown CA are one line each, naming
the broker without a secret.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_fleet as fleet_tests
from tests.integration.test_fleet import (  # noqa: F401  (slow_http is a fixture)
    MOVER,
    ROOT,
    Fleet,
    make_fleet,
    random_file,
    redis_contents,
    scrape,
    sha256,
    slow_http,
    wait_for,
)
from tests.secure_redis import SecureRedisServer, make_tls_files

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.celery]

MiB = 1 << 20


@pytest.fixture(scope="module")
def secure_redis() -> Iterator[SecureRedisServer]:
    from tests.fixtures_servers import _serve

    yield from _serve(SecureRedisServer)


@pytest.fixture(scope="module")
def secure_fleet(
    secure_redis: SecureRedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Fleet]:
    """Two workers on the TLS Redis; its URL in the configuration file, its password in the
    environment only."""
    folder = tmp_path_factory.mktemp("secure")
    (folder / "config.toml").write_text(f'[fleet]\nbroker_url = "{secure_redis.bare_url}"\n')
    fleet = make_fleet(
        secure_redis,
        folder,
        request,
        MOVER_BROKER_URL="",
        MOVER_BROKER_PASSWORD=secure_redis.password,
    )
    try:
        a, b = fleet.start_worker("s1"), fleet.start_worker("s2")
        fleet.wait_ready(a, b)
        yield fleet
    finally:
        for w in fleet.workers:
            fleet.stop(w)


def test_copy_on_tls_redis_with_a_password(secure_fleet: Fleet, tmp_path: Path) -> None:
    src = random_file(tmp_path / "src.bin", 9 * MiB + 3)
    dst = tmp_path / "dst.bin"
    out = secure_fleet.mover("copy", str(src), str(dst), "--chunk-size", "1MiB", "--wait")
    assert out.returncode == 0, out.stderr
    assert sha256(dst) == sha256(src)
    job_id = re.search(r"job (\w+)", out.stderr).group(1)
    assert secure_fleet.jobs().commits(job_id, 0) == 1


@pytest.mark.slow
def test_cancel_on_tls_redis(secure_fleet: Fleet, slow_http: Any, tmp_path: Path):  # noqa: F811
    fleet_tests.test_cancel_mid_job(secure_fleet, slow_http, tmp_path)


def test_planted_password_appears_nowhere(
    secure_fleet: Fleet, secure_redis: SecureRedisServer, tmp_path: Path
) -> None:
    """After the jobs above: not in a worker log, a command's output, a metric, the dashboard's
    data, or any Redis key or value."""
    password = secure_redis.password
    src = random_file(tmp_path / "s.bin", 2 * MiB)
    copy = secure_fleet.mover(
        "copy", str(src), str(tmp_path / "d.bin"), "--chunk-size", "1MiB", "--detach"
    )
    assert copy.returncode == 0, copy.stderr
    job_id = copy.stdout.strip()
    seen: dict[str, str | bytes] = {"copy": copy.stdout + copy.stderr}
    for args in (("jobs",), ("status", job_id), ("status", job_id, "--json")):
        out = secure_fleet.mover(*args)
        assert out.returncode == 0, out.stderr
        seen[" ".join(args)] = out.stdout + out.stderr
    seen["metrics"] = scrape(secure_fleet, "metrics", "/metrics")
    assert b"mover_up 1.0" in seen["metrics"]
    seen["dashboard"] = scrape(secure_fleet, "dashboard", "/api/fleet")
    seen["flower's broker page"] = scrape(secure_fleet, "flower", "/broker")
    assert f"127.0.0.1:{secure_redis.port}".encode() in seen["flower's broker page"]
    for worker in secure_fleet.workers:
        seen[f"log of {worker.name}"] = worker.text()
    everything = redis_contents(secure_redis.url)
    assert everything
    for where, text in seen.items():
        blob = text if isinstance(text, bytes) else text.encode()
        assert password.encode() not in blob, f"the broker password is in {where}"
    for blob in everything:
        assert password.encode() not in blob, "the broker password is in Redis"


def _jobs_error(env: dict[str, str], server: SecureRedisServer, *words: str) -> str:
    """``mover jobs`` under ``env`` fails with one line naming the server and ``words``,
    without the password."""
    out = subprocess.run([*MOVER, "jobs"], env=env, capture_output=True, text=True, timeout=60)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1, out.stderr
    for word in (f"127.0.0.1:{server.port}", *words):
        assert word in lines[0], lines[0]
    assert server.password not in out.stderr
    return lines[0]


def test_wrong_password_and_unknown_ca_are_one_line(
    secure_fleet: Fleet, secure_redis: SecureRedisServer, tmp_path: Path
) -> None:
    wrong = "wrongBrokerPw1234"
    env = {**secure_fleet.env, "MOVER_BROKER_PASSWORD": wrong}
    assert wrong not in _jobs_error(env, secure_redis, "password")
    other_ca, _, _ = make_tls_files(tmp_path)
    bare = secure_redis.bare_url.replace(str(secure_redis.ca_file), str(other_ca))
    (tmp_path / "config.toml").write_text(f'[fleet]\nbroker_url = "{bare}"\n')
    env = {**secure_fleet.env, "MOVER_CONFIG": str(tmp_path / "config.toml")}
    _jobs_error(env, secure_redis, "ssl_ca_certs")
