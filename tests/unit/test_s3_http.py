"""The standard-library S3 client's pieces that need no server (mover/providers/s3_http.py):
its SigV4 signature against awscrt's signer (an independent implementation, given the same
clock), and the checksums the lean paths compute without awscrt against awscrt's own."""

from __future__ import annotations

import datetime
import os
import sys
import time
from pathlib import Path

import pytest

from mover import digests
from mover.providers.s3_http import Credentials, Signer, canonical_query

NOW = datetime.datetime(2026, 11, 27, 10, 11, 12, tzinfo=datetime.UTC)


def _awscrt_authorization(
    method: str, path: str, headers: list[tuple[str, str]], creds: Credentials, region: str
) -> str:
    from awscrt import auth, http

    provider = auth.AwsCredentialsProvider.new_static(
        creds.access_key, creds.secret_key, creds.token
    )
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=provider,
        region=region,
        service="s3",
        date=NOW,
        use_double_uri_encode=False,
        should_normalize_uri_path=False,
        signed_body_value=auth.AwsSignedBodyValue.UNSIGNED_PAYLOAD,
        signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
    )
    request = http.HttpRequest(method, path, http.HttpHeaders(headers))
    signed = auth.aws_sign_request(request, config).result(timeout=10)
    return str(signed.headers.get("Authorization"))


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "token"),
    [
        ("GET", "/bucket/key.bin", "", [("Range", "bytes=0-9")], None),
        ("HEAD", "/bucket/a%20b/c~d.bin", "partNumber=2", [("If-Match", '"0123abcd"')], None),
        ("GET", "/bucket", "prefix=p%2Fq&list-type=2&max-keys=1", [], "session/token+="),
        ("PUT", "/bucket/k", "", [("x-amz-checksum-crc32c", "qTxfkw==")], None),
        ("GET", "/bucket/k", "attributes", [("x-amz-object-attributes", "ETag,ObjectParts")], None),
    ],
)
def test_signature_matches_awscrt(
    method: str, path: str, query: str, headers: list[tuple[str, str]], token: str | None
) -> None:
    creds = Credentials("AKIDEXAMPLE", "secret/Key+with=signs", token)
    host = "127.0.0.1:8333"
    mine = Signer("eu-west-3").headers(method, host, path, query, headers, creds, NOW.timestamp())
    ours = dict(mine)["Authorization"]
    target = path + ("?" + query if query else "")
    theirs = _awscrt_authorization(method, target, [("Host", host), *headers], creds, "eu-west-3")
    assert ours == theirs
    assert dict(mine)["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert ("x-amz-security-token" in dict(mine)) == bool(token)


def test_canonical_query_sorts_pairs_and_gives_bare_names_a_value() -> None:
    assert canonical_query("uploads") == "uploads="
    assert canonical_query("prefix=b&list-type=2&continuation-token=x%2By") == (
        "continuation-token=x%2By&list-type=2&prefix=b"
    )
    assert canonical_query("") == ""


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "crc64nvme"])
def test_crc_combine_agrees_with_awscrt_and_with_hashing_again(algorithm: str) -> None:
    from awscrt import checksums

    combine = {
        "crc32": checksums.combine_crc32,
        "crc32c": checksums.combine_crc32c,
        "crc64nvme": checksums.combine_crc64nvme,
    }[algorithm]
    fn = digests.ALGORITHMS[algorithm]
    for first, second in [(0, 0), (1, 0), (0, 3), (1000, 1), (77, 4097)]:
        a, b = os.urandom(first), os.urandom(second)
        assert digests.crc_combine(algorithm, fn(a), fn(b), len(b)) == fn(a + b)
    width = digests.CRCS[algorithm][1]
    for length in (1, 64 << 20, (1 << 40) + 12345):
        x, y = int.from_bytes(os.urandom(width), "big"), int.from_bytes(os.urandom(width), "big")
        got = digests.crc_combine(
            algorithm, x.to_bytes(width, "big"), y.to_bytes(width, "big"), length
        )
        assert int.from_bytes(got, "big") == combine(x, y, length)


def test_crc32_agrees_with_awscrt_and_crc32c_with_the_package_on_both_sides_of_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import crc32c
    from awscrt import checksums

    data = os.urandom(5000)
    assert digests.ALGORITHMS["crc32"](data) == checksums.crc32(data).to_bytes(4, "big")
    monkeypatch.setattr(digests, "_py_crc32c_left", 10_000)
    for size in (0, 1, 63, 4999):  # within the budget: the table in Python
        assert digests._crc32c(data[:size]) == crc32c.crc32c(data[:size])
    assert digests._crc32c(data[100:], digests._crc32c(data[:100])) == crc32c.crc32c(data)
    assert digests._py_crc32c_left < 10_000 - 4999
    assert digests._crc32c(data) == crc32c.crc32c(data)  # past the budget: the package


@pytest.mark.parametrize(("lifetime_s", "asked"), [(3600, 1), (60, 3)])
def test_chain_credentials_are_asked_again_only_near_their_expiry(
    lifetime_s: int, asked: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile's credential_process, through awscrt's profile provider: keys that expire
    in an hour are asked once; keys within the refresh margin are asked on every use."""
    from mover.providers import s3_crt
    from mover.providers.s3_http import CREDENTIALS_MARGIN_S, credentials_for

    assert 60 < CREDENTIALS_MARGIN_S < 3600
    calls = tmp_path / "calls"
    script = tmp_path / "creds.py"
    script.write_text(
        "import datetime, json, sys\n"
        f"open({str(calls)!r}, 'a').write('x')\n"
        "end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=int(sys.argv[1]))\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': 'AK', 'SecretAccessKey': 'SK',\n"
        "    'SessionToken': 'TOK', 'Expiration': end.strftime('%Y-%m-%dT%H:%M:%SZ')}))\n"
    )
    (tmp_path / "config").write_text(
        f"[profile p]\ncredential_process = {sys.executable} {script} {lifetime_s}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    s = s3_crt.settings({"endpoint_url": "http://127.0.0.1:1", "profile": "p"}, 1, 1.0, 10.0)
    assert s is not None and s.static is None
    fetch = credentials_for(s)
    got = [fetch() for _ in range(3)]
    assert {(c.access_key, c.secret_key, c.token) for c in got} == {("AK", "SK", "TOK")}
    assert got[0].expires is not None and abs(got[0].expires - time.time() - lifetime_s) < 60
    assert len(calls.read_text()) == asked
