"""The S3 store's lean engines against a real SeaweedFS: the standard-library client
(mover/providers/s3_http.py, the default) and awscrt (mover/providers/s3_crt.py, ``engine =
"awscrt"``).

Small requests and every ranged GET go through them; what the store promised on botocore must
hold on them too: the server checks the crc32c mover sends (a wrong one is refused, nothing
stored), reads are pinned to the version the job was prepared from, credentials come from the
chain (environment, profile files, a profile's credential process), and a command that moves
one small object, or downloads a large one, imports neither boto3 nor awscrt (issue 10 item
4). Every result is read back with plain boto3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mover.digests import digest
from mover.errors import AccessDenied, SourceChanged, VerificationFailed
from mover.providers.s3 import S3Provider
from mover.resolve import clear_cache, open_location

if TYPE_CHECKING:
    from tests.servers import SeaweedS3Server

pytestmark = [pytest.mark.integration, pytest.mark.s3]

#: Libraries a lean S3 command must not import (awscrt: 30 ms of CPU at import).
HEAVY = {"boto3", "botocore", "awscrt", "celery", "kombu", "redis", "crc32c"}
#: Standard-library packages a one-byte copy does without: ``http.client`` parses headers with
#: ``email`` (mover's own framing, mover.providers.wire, does not), and a Last-Modified date
#: needs no ``email`` either (mover.httpdate); about 20 ms of start-up together.
LEAN_STDLIB = {"email", "http"}
#: Modules (all, not top-level) a one-object S3 copy may load (today about 250).
S3_COPY_BUDGET = 280

_PROBE = """
import json, sys
from mover.cli.main import main
sys.argv = ["mover", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
print(json.dumps(sorted(sys.modules)))
"""


@pytest.fixture
def s3_env(
    s3_server: SeaweedS3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """The server in the environment (as any AWS tool reads it), no profile files."""
    for name in (
        "AWS_PROFILE",
        "AWS_MAX_ATTEMPTS",
        "AWS_ENDPOINT_URL_S3",
        "MOVER_S3_ENGINE",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    env = {
        **s3_server.env(),
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "MOVER_STATE_DIR": str(tmp_path / "state"),
        "MOVER_CONFIG": str(tmp_path / "no-config.toml"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    clear_cache()
    yield env
    clear_cache()


def _copy_in_fresh_process(env: dict[str, str], *argv: str) -> list[str]:
    """Run ``mover ARGV`` in a new interpreter; the modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=True,
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def _top(modules: list[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def _store(bucket: str) -> S3Provider:
    store, _ = open_location(f"s3://{bucket}/")
    assert isinstance(store, S3Provider)
    return store


def test_one_byte_copies_import_no_sdk(
    s3_env: dict[str, str], s3_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    source = tmp_path / "one.bin"
    source.write_bytes(b"z")
    up = _copy_in_fresh_process(s3_env, "copy", str(source), f"s3://{s3_bucket}/one.bin")
    assert s3_client.get_object(Bucket=s3_bucket, Key="one.bin")["Body"].read() == b"z"
    down = _copy_in_fresh_process(s3_env, "copy", f"s3://{s3_bucket}/one.bin", str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == b"z"
    for modules in (up, down):
        assert not _top(modules) & (HEAVY | LEAN_STDLIB), sorted(
            _top(modules) & (HEAVY | LEAN_STDLIB)
        )
        assert "importlib.metadata" not in modules
        assert len(modules) < S3_COPY_BUDGET, f"{len(modules)} modules for a 1-byte S3 copy"


def test_a_multipart_download_imports_no_sdk_and_is_checked(
    s3_env: dict[str, str], s3_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    """Parts of 10 MiB (ranged GETs larger than a small request) read on the standard-library
    client and checked against the object's multipart ETag or CRC, with no boto3."""
    data = os.urandom(23 * 1024 * 1024)
    upload = s3_client.create_multipart_upload(Bucket=s3_bucket, Key="big.bin")["UploadId"]
    parts = []
    for n, offset in enumerate(range(0, len(data), 10 << 20), start=1):
        etag = s3_client.upload_part(
            Bucket=s3_bucket,
            Key="big.bin",
            UploadId=upload,
            PartNumber=n,
            Body=data[offset : offset + (10 << 20)],
        )["ETag"]
        parts.append({"PartNumber": n, "ETag": etag})
    s3_client.complete_multipart_upload(
        Bucket=s3_bucket, Key="big.bin", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    target = tmp_path / "big.bin"
    modules = _copy_in_fresh_process(
        s3_env, "copy", "--chunk-size", "10MiB", f"s3://{s3_bucket}/big.bin", str(target)
    )
    assert target.read_bytes() == data
    assert not _top(modules) & HEAVY, sorted(_top(modules) & HEAVY)


@pytest.mark.parametrize(("name", "library"), [("awscrt", "awscrt"), ("botocore", "botocore")])
def test_other_engines_by_environment(
    name: str, library: str, s3_env: dict[str, str], s3_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    """``MOVER_S3_ENGINE=awscrt`` sends the small requests on awscrt; ``botocore`` keeps every
    request on botocore (the fallback)."""
    source = tmp_path / "one.bin"
    source.write_bytes(name.encode())
    env = {**s3_env, "MOVER_S3_ENGINE": name}
    modules = _copy_in_fresh_process(env, "copy", str(source), f"s3://{s3_bucket}/{name}")
    assert s3_client.get_object(Bucket=s3_bucket, Key=name)["Body"].read() == name.encode()
    assert library in _top(modules)


@pytest.mark.parametrize("how", ["credentials file", "credential process"])
def test_credentials_from_a_profile(
    how: str,
    s3_env: dict[str, str],
    s3_server: SeaweedS3Server,
    s3_bucket: str,
    s3_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys in ~/.aws/credentials (read here), or a profile's credential_process (asked of
    awscrt's profile provider): the standard-library client signs with either; a wrong key
    in the profile is refused."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    secret = s3_server.secret_key
    if how == "credentials file":
        Path(s3_env["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
            f"[lean]\naws_access_key_id = {s3_server.access_key}\n"
            f"aws_secret_access_key = {secret}\n[wrong]\naws_access_key_id = "
            f"{s3_server.access_key}\naws_secret_access_key = not-{secret}\n"
        )
    else:
        script = tmp_path / "creds.py"
        script.write_text(
            "import json, sys\n"
            "print(json.dumps({'Version': 1, 'AccessKeyId': sys.argv[1], "
            "'SecretAccessKey': sys.argv[2]}))\n"
        )
        run = f"{sys.executable} {script} {s3_server.access_key}"
        Path(s3_env["AWS_CONFIG_FILE"]).write_text(
            f"[profile lean]\ncredential_process = {run} {secret}\n"
            f"[profile wrong]\ncredential_process = {run} not-{secret}\n"
        )
    s3_client.put_object(Bucket=s3_bucket, Key="k", Body=b"0123456789")
    monkeypatch.setenv("AWS_PROFILE", "lean")
    clear_cache()
    store = _store(s3_bucket)
    assert store._settings() is not None
    assert (store._settings().static is None) == (how == "credential process")  # type: ignore[union-attr]
    buf = bytearray(4)
    assert store.read_into("k", 2, memoryview(buf)) == 4 and bytes(buf) == b"2345"
    monkeypatch.setenv("AWS_PROFILE", "wrong")
    clear_cache()
    with pytest.raises(AccessDenied):
        _store(s3_bucket).stat("k")


@pytest.fixture(params=["http", "awscrt"])
def engine(
    request: pytest.FixtureRequest, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> str:
    """Each lean engine in turn."""
    monkeypatch.setenv("MOVER_S3_ENGINE", request.param)
    clear_cache()
    return str(request.param)


def test_put_with_a_wrong_checksum_is_refused_by_the_server(
    engine: str, s3_bucket: str, s3_client: Any
) -> None:
    store = _store(s3_bucket)
    data = memoryview(b"the bytes mover read")
    wrong = digest("crc32c", b"other bytes")
    with pytest.raises(VerificationFailed) as refused:
        store.put("bad.bin", data, wrong)
    assert refused.value.retryable
    listed = s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents") or []
    assert [o["Key"] for o in listed] == []
    info = store.put("good.bin", data, digest("crc32c", data))
    head = s3_client.head_object(Bucket=s3_bucket, Key="good.bin", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data) and info.etag == head["ETag"].strip('"')
    assert head.get("ChecksumCRC32C") in (None, digest("crc32c", data).b64)


def test_small_reads_land_in_the_buffer_and_hold_the_version(
    engine: str, s3_bucket: str, s3_client: Any
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="k", Body=b"0123456789")
    store = _store(s3_bucket)
    info = store.stat("k")
    assert info.size == 10 and info.etag == s3_client.head_object(Bucket=s3_bucket, Key="k")[
        "ETag"
    ].strip('"')
    buf = bytearray(4)
    assert store.read_version_into("k", info.etag or "", 3, memoryview(buf)) == 4
    assert bytes(buf) == b"3456"
    assert store.read_into("k", 10, memoryview(bytearray(4))) == 0  # past the end
    s3_client.put_object(Bucket=s3_bucket, Key="k", Body=b"replaced!!")
    with pytest.raises(SourceChanged):
        store.read_version_into("k", info.etag or "", 0, memoryview(bytearray(4)))


def test_large_reads_land_in_the_buffer_and_hold_the_version(
    s3_env: dict[str, str], s3_bucket: str, s3_client: Any
) -> None:
    """A ranged GET larger than a small request, on the standard-library client: the body
    lands in the caller's buffer, a replaced object fails with SourceChanged, a read past
    the end gives nothing, a buffer longer than the object gets what there is."""
    data = os.urandom(9 * 1024 * 1024 + 3)
    s3_client.put_object(Bucket=s3_bucket, Key="big", Body=data)
    store = _store(s3_bucket)
    info = store.stat("big")
    buf = bytearray(9 * 1024 * 1024)
    assert store.read_version_into("big", info.etag or "", 3, memoryview(buf)) == len(buf)
    assert bytes(buf) == data[3 : 3 + len(buf)]
    longer = bytearray(len(data) + 100)
    assert store.read_into("big", 0, memoryview(longer)) == len(data)
    assert bytes(longer[: len(data)]) == data
    assert store.read_into("big", len(data), memoryview(buf)) == 0
    s3_client.put_object(Bucket=s3_bucket, Key="big", Body=data[::-1])
    with pytest.raises(SourceChanged):
        store.read_version_into("big", info.etag or "", 0, memoryview(buf))


def test_a_connection_closed_while_idle_is_replaced_not_counted_as_an_attempt(
    s3_env: dict[str, str], s3_bucket: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keep-alive connection the other end closed while it sat in the pool fails on reuse;
    the request goes again on a new connection without spending an attempt (one allowed)."""
    import socket

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clear_cache()
    s3_client.put_object(Bucket=s3_bucket, Key="k", Body=b"abc")
    store = _store(s3_bucket)
    plain = store._plain()
    assert plain is not None
    assert store.stat("k").size == 3
    idle = list(plain._idle)
    assert idle, "the connection went back to the pool"
    for conn in idle:
        assert conn.sock is not None
        conn.sock.shutdown(socket.SHUT_RDWR)  # as a server's idle time-out leaves it
    buf = bytearray(3)
    assert store.read_into("k", 0, memoryview(buf)) == 3 and bytes(buf) == b"abc"
    assert store.stat("k").size == 3


def test_a_forked_child_opens_its_own_connections(
    s3_env: dict[str, str], s3_bucket: str, s3_client: Any
) -> None:
    """A prefork worker's child must not speak on its parent's pooled connections: after a
    fork the child starts with an empty pool, and both processes go on reading."""
    s3_client.put_object(Bucket=s3_bucket, Key="k", Body=b"abc")
    store = _store(s3_bucket)
    plain = store._plain()
    assert plain is not None and store.stat("k").size == 3 and plain._idle
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        code = 1
        try:
            if not plain._idle:
                buf = bytearray(3)
                code = 0 if store.read_into("k", 0, memoryview(buf)) == 3 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.stat("k").size == 3 and plain._idle  # the parent's pool still serves it
