"""Templates and snapshots through the fleet: a service that does not import mover sends
``mover.template.register`` and ``mover.snapshot.backup`` by name; real workers run them
against the stores of a catalogue they share with the caller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_fleet import MOVER, Fleet, fleet, random_file  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.celery, pytest.mark.s3]

MiB = 1 << 20

#: A client with Celery only: it must not import mover.
CLIENT = textwrap.dedent(
    """
    import json, sys
    from celery import Celery

    url, name, payload = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    app = Celery(broker=url, backend=url)
    result = app.send_task(name, args=[payload], queue="mover").get(timeout=120)
    assert "mover" not in sys.modules
    print(json.dumps(result))
    """
)


def send(on: Fleet, name: str, payload: dict[str, Any]) -> Any:
    out = subprocess.run(
        [sys.executable, "-c", CLIENT, on.redis.url, name, json.dumps(payload)],
        capture_output=True,
        text=True,
        timeout=180,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def cli(on: Fleet, *args: str) -> str:
    out = subprocess.run([*MOVER, *args], env=on.env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_templates_and_snapshots_by_task_name(fleet: Fleet, tmp_path: Path) -> None:  # noqa: F811
    if fleet.s3 is None:
        pytest.skip("the S3 server is not available")
    import boto3

    s3 = boto3.client("s3", **fleet.s3.client_kwargs())
    bucket = f"fleetcat-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    zone_a = tmp_path / "zone-a"
    zone_a.mkdir()
    # The catalogue lives in the fleet's state directory: workers and caller share it.
    cli(fleet, "zones", "add", "a")
    # The repository's key by reference: a file every worker reads (never in a task message).
    key_file = tmp_path / "repo.key"
    key_file.write_text("fleet catalogue passphrase\n")
    cli(
        fleet,
        "stores",
        "add",
        "region-s3",
        f"s3://{bucket}/region/",
        "--scope",
        "region",
        "-o",
        f"repository_key_file={key_file}",
    )
    cli(fleet, "stores", "add", "a-files", f"file://{zone_a}/", "--scope", "zone:a")

    image = random_file(tmp_path / "centos.qcow2", 9 * MiB + 7)
    region = send(fleet, "mover.template.register", {"name": "centos", "source": str(image)})
    assert region["ok"], region
    body = s3.get_object(Bucket=bucket, Key="region/templates/centos/centos.qcow2")["Body"]
    assert body.read() == image.read_bytes()

    zoned = send(
        fleet,
        "mover.template.register",
        {"name": "ubuntu", "source": str(image), "scope": "zone", "zones": ["a"]},
    )
    assert zoned["ok"], zoned
    assert (zone_a / "templates" / "ubuntu" / "centos.qcow2").read_bytes() == image.read_bytes()
    where = send(fleet, "mover.template.locate", {"name": "centos", "zone": "a"})
    assert where["via"] == "region"
    copied = send(fleet, "mover.template.copy", {"name": "centos", "to_zone": "a"})
    assert copied["ok"], copied
    assert (zone_a / "templates" / "centos" / "centos.qcow2").read_bytes() == image.read_bytes()
    assert send(fleet, "mover.template.locate", {"name": "centos", "zone": "a"})["via"] == "zone"
    send(fleet, "mover.template.delete", {"name": "centos"})
    assert not (zone_a / "templates" / "centos" / "centos.qcow2").exists()
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="region/templates/centos/")
    assert listing.get("KeyCount", 0) == 0

    volume = random_file(tmp_path / "vol.img", 6 * MiB)
    first = send(
        fleet,
        "mover.snapshot.backup",
        {"source": str(volume), "to": "region-s3", "name": "vol", "chunk_size": MiB},
    )
    with open(volume, "r+b") as f:  # change one chunk
        f.seek(2 * MiB + 5)
        f.write(b"changed")
    second = send(
        fleet,
        "mover.snapshot.backup",
        {"source": str(volume), "to": "region-s3", "name": "vol", "chunk_size": MiB},
    )
    assert json.dumps(first) != json.dumps(second)
    restored = tmp_path / "restored.img"
    send(fleet, "mover.snapshot.restore", {"name": "vol", "destination": str(restored)})
    assert restored.read_bytes() == volume.read_bytes()

    bad = subprocess.run(
        [sys.executable, "-c", CLIENT, fleet.redis.url, "mover.template.register", '{"nme": 1}'],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "unknown payload keys nme" in bad.stderr
