"""Which S3 stores get the lean engines (mover/providers/s3_crt.py, s3_http.py), with which
credentials, and listing pages.

The engines are built only from what is known without boto3; everything else stays on
botocore. Static keys are taken where the standard chain would settle on them without a
request; anything more (a role, SSO, a process) is left to awscrt's providers. Pure functions:
no server, no client.
"""

from __future__ import annotations

import os
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
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        *(n for n in os.environ if n.lower().endswith("_proxy")),
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))


def _settings(options: dict[str, object]) -> s3_crt.Settings | None:
    return s3_crt.settings(options, 3, 10.0, 60.0)


def test_an_endpoint_from_options_or_environment_gets_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = _settings({"endpoint_url": "http://127.0.0.1:8333/"})
    assert s is not None and s.endpoint_url == "http://127.0.0.1:8333"
    assert s.region == "us-east-1" and s.max_attempts == 3
    assert s.engine == "http"  # the standard-library client unless awscrt is asked for
    assert _settings({"endpoint_url": "http://h:1", "engine": "awscrt"}).engine == "awscrt"  # type: ignore[union-attr]
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
    assert _settings({**endpoint, "engine": "no-such-engine"}) is None
    assert _settings({**endpoint, "payload_signing_enabled": True}) is None
    monkeypatch.setenv("MOVER_S3_ENGINE", "botocore")
    assert _settings(endpoint) is None
    monkeypatch.delenv("MOVER_S3_ENGINE")
    # A proxy for the endpoint: botocore goes through it, the lean engines would not.
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert _settings(endpoint) is None
    assert _settings({"endpoint_url": "https://s3.example"}) is not None  # HTTPS: no proxy set
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert _settings(endpoint) is not None


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


def test_static_keys_in_the_standard_chains_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    endpoint = {"endpoint_url": "http://127.0.0.1:8333"}
    s = _settings(endpoint)
    assert s is not None and s.static is None and s.profile is None  # awscrt's default chain
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = file-key\naws_secret_access_key = file-secret\n"
        "[roled]\naws_access_key_id = k\naws_secret_access_key = s\nrole_arn = arn:x\n"
    )
    (tmp_path / "config").write_text(
        "[profile cfg]\naws_access_key_id = cfg-key\naws_secret_access_key = cfg-secret\n"
        "aws_session_token = cfg-token\n[profile sso]\nsso_session = corp\n"
    )
    assert _settings(endpoint).static == ("file-key", "file-secret", None)  # type: ignore[union-attr]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    assert _settings(endpoint).static == ("env-key", "env-secret", None)  # type: ignore[union-attr]
    # AWS_PROFILE does not outrank the environment's keys (as in boto3's chain) ...
    monkeypatch.setenv("AWS_PROFILE", "cfg")
    assert _settings(endpoint).static == ("env-key", "env-secret", None)  # type: ignore[union-attr]
    # ... a profile named in the store's options does.
    s = _settings({**endpoint, "profile": "cfg"})
    assert s is not None and s.static == ("cfg-key", "cfg-secret", "cfg-token")
    assert s.profile is None and "cfg-secret" not in repr(s)
    for profile in ("roled", "sso", "absent"):  # a role, SSO, nothing: awscrt's provider
        s = _settings({**endpoint, "profile": profile})
        assert s is not None and s.static is None and s.profile == profile
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_PROFILE")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")
    assert _settings(endpoint).static is None  # type: ignore[union-attr]  # web identity first


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


def test_object_attributes_are_shaped_as_botocore_returns_them() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<GetObjectAttributesResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<ETag>abc-2</ETag><ObjectParts><TotalPartsCount>2</TotalPartsCount>"
        b"<NextPartNumberMarker>2</NextPartNumberMarker><IsTruncated>true</IsTruncated>"
        b"<Part><PartNumber>1</PartNumber><Size>5</Size><ChecksumCRC32>AAAAAQ==</ChecksumCRC32>"
        b"</Part><Part><PartNumber>2</PartNumber><Size>3</Size></Part></ObjectParts>"
        b"</GetObjectAttributesResponse>"
    )
    answer = s3_crt.parse_attributes(body)
    assert answer["ETag"] == "abc-2"
    assert answer["ObjectParts"] == {
        "Parts": [
            {"PartNumber": 1, "Size": 5, "ChecksumCRC32": "AAAAAQ=="},
            {"PartNumber": 2, "Size": 3},
        ],
        "IsTruncated": True,
        "NextPartNumberMarker": 2,
    }
    with pytest.raises(ValueError):
        s3_crt.parse_attributes(b"not xml")


def test_upload_listings_and_single_values_are_read() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Bucket>b</Bucket><Upload><Key>k</Key><UploadId>u1</UploadId>"
        b"<Initiated>2026-11-27T10:00:00.000Z</Initiated></Upload>"
        b"<Upload><Key>k2</Key><UploadId>u2</UploadId></Upload></ListMultipartUploadsResult>"
    )
    uploads = s3_crt.parse_uploads(body)
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("k", "u1"), ("k2", "u2")]
    assert uploads[0]["Initiated"].timestamp() == 1795773600.0 and uploads[1]["Initiated"] is None
    assert s3_crt.xml_text(body, "UploadId") == "u1"
    with pytest.raises(ValueError, match="no Part"):
        s3_crt.xml_text(body, "Part")
    with pytest.raises(ValueError, match="no XML"):
        s3_crt.xml_text(b"<half", "UploadId")
