"""``mover strategies`` on the real servers: server-side wins on one endpoint, streaming across."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.s3, pytest.mark.swift]


def _strategies(src: str, dst: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "mover.cli.main", "strategies", src, dst],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def env(s3_server, swift_server, s3_bucket, swift_container, tmp_path) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_DEFAULT_REGION": s3_server.region,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "ST_AUTH": swift_server.auth_url,
        "ST_USER": swift_server.user,
        "ST_KEY": swift_server.key,
    }


def test_s3_to_s3_on_one_endpoint_is_server_side(env, s3_client, s3_bucket) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="x", Body=b"abc")
    out = _strategies(f"s3://{s3_bucket}/x", f"s3://{s3_bucket}/y", env)
    assert "winner: server-side" in out
    assert "*server-side" in out and "SERVER_SIDE" in out


def test_s3_to_swift_streams(env, s3_client, s3_bucket, swift_container) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="x", Body=b"abc")
    out = _strategies(f"s3://{s3_bucket}/x", f"swift://{swift_container}/y", env)
    assert "winner: streaming" in out
    server_side = next(line for line in out.splitlines() if "server-side" in line)
    assert "CANT_HANDLE" in server_side


def test_swift_to_swift_is_server_side(env, swift_connection, swift_container) -> None:
    swift_connection.put_object(swift_container, "x", b"abc")
    out = _strategies(f"swift://{swift_container}/x", f"swift://{swift_container}/y", env)
    assert "winner: server-side" in out
