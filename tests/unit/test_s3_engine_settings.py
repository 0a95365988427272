"""Which S3 stores get the lean awscrt engine (mover/providers/s3_crt.py), and listing pages.

The engine is built only from what is known without boto3; everything else stays on botocore.
Pure functions: no server, no client.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mover.providers import s3_crt


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "MOVER_S3_ENGINE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))


def _settings(options: dict[str, object]) -> s3_crt.Settings | None:
    return s3_crt.settings(options, 3, 10.0, 60.0)


def test_an_endpoint_from_options_or_environment_gets_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = _settings({"endpoint_url": "http://127.0.0.1:8333/"})
    assert s is not None and s.endpoint_url == "http://127.0.0.1:8333"
    assert s.region == "us-east-1" and s.max_attempts == 3
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example:9000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    s = _settings({})
    assert s is not None and s.endpoint_url == "https://s3.example:9000"
    assert s.region == "eu-west-1"


def test_aws_itself_virtual_addressing_and_the_fallback_stay_on_botocore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _settings({}) is None  # AWS: virtual-hosted buckets, boto3's endpoint rules
    endpoint = {"endpoint_url": "http://127.0.0.1:8333"}
    assert _settings({**endpoint, "addressing_style": "virtual"}) is None
    assert _settings({**endpoint, "engine": "botocore"}) is None
    assert _settings({**endpoint, "payload_signing_enabled": True}) is None
    monkeypatch.setenv("MOVER_S3_ENGINE", "botocore")
    assert _settings(endpoint) is None


def test_region_from_the_profile_and_credentials_from_named_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "config").write_text("[profile backup]\nregion = ap-south-1\n")
    endpoint = {"endpoint_url": "http://127.0.0.1:8333"}
    s = _settings({**endpoint, "profile": "backup"})
    assert s is not None and s.region == "ap-south-1" and s.profile == "backup"
    assert _settings({**endpoint, "credentials_env": "EAST"}) is None  # unset: botocore says
    monkeypatch.setenv("EAST_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("EAST_SECRET_ACCESS_KEY", "secret-value")
    s = _settings({**endpoint, "credentials_env": "EAST"})
    assert s is not None and s.static == ("key", "secret-value", None)
    assert "secret-value" not in repr(s)


def test_listing_pages_are_parsed() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>"
        b"<Contents><Key>p/a &amp; b.bin</Key><LastModified>2026-11-27T10:00:00.000Z"
        b'</LastModified><ETag>"0123"</ETag><Size>5</Size></Contents>'
        b"<Contents><Key>p/c.bin</Key><Size>0</Size></Contents>"
        b"<NextContinuationToken>tok/en=</NextContinuationToken></ListBucketResult>"
    )
    page = s3_crt.parse_listing(body)
    assert [(o.key, o.size, o.etag) for o in page.objects] == [
        ("p/a & b.bin", 5, "0123"),
        ("p/c.bin", 0, None),
    ]
    assert page.objects[0].mtime == 1795773600.0
    assert page.next_token == "tok/en="
    assert s3_crt.key_count(body) == 2
    last = body.replace(b"<IsTruncated>true", b"<IsTruncated>false")
    assert s3_crt.parse_listing(last).next_token is None
