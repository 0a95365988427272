"""Sequential reads are a declared capability: S3 (ranged reads only) streams to standard output.

The object's digest is computed from the bytes uploaded with plain boto3 and compared with what
``sha256sum`` reads from mover's standard output: neither number comes from mover.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mover.provider import MiB

if TYPE_CHECKING:
    from tests.servers import SeaweedS3Server

pytestmark = [pytest.mark.integration, pytest.mark.s3]

MOVER = str(Path(sys.executable).with_name("mover"))


def _env(s3_server: SeaweedS3Server, tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, **s3_server.env()}
    env["MOVER_STATE_DIR"] = str(tmp_path / "state")
    env["MOVER_CONFIG"] = str(tmp_path / "no-config.toml")
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-aws-credentials")
    env.pop("MOVER_BROKER_URL", None)
    return env


def test_s3_to_stdout_piped_to_sha256sum(
    s3_server: SeaweedS3Server, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(12 * MiB + 7)
    s3_client.put_object(Bucket=s3_bucket, Key="dir/object.bin", Body=data)
    want = hashlib.sha256(data).hexdigest()

    url = shlex.quote(f"s3://{s3_bucket}/dir/object.bin")
    run = subprocess.run(
        f"set -o pipefail; {shlex.quote(MOVER)} copy -q --chunk-size 5MiB {url} - | sha256sum",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        env=_env(s3_server, tmp_path),
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[0] == want


def test_s3_missing_object_to_stdout_is_one_line(
    s3_server: SeaweedS3Server, s3_bucket: str, tmp_path: Path
) -> None:
    run = subprocess.run(
        [MOVER, "copy", f"s3://{s3_bucket}/absent.bin", "-"],
        capture_output=True,
        text=True,
        env=_env(s3_server, tmp_path),
        timeout=60,
    )
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and "NotImplementedError" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
