"""Parsing locations: URLs, paths, stdin, configured stores, and the errors for bad ones."""

from __future__ import annotations

import pytest

from mover import config
from mover.errors import BadLocation, KeyEscapesRoot, UnknownStore
from mover.location import parse
from mover.resolve import resolve as resolve_store


def test_plain_path_is_a_file_location(tmp_path) -> None:
    loc = parse(str(tmp_path / "a.img"))
    assert loc.scheme == "file"
    assert "/" + loc.full_key == str(tmp_path / "a.img")


def test_urls() -> None:
    loc = parse("s3://bucket/dir/key.qcow2")
    assert (loc.scheme, loc.store, loc.key) == ("s3", "bucket", "dir/key.qcow2")
    assert parse("file:///srv/x").full_key == "srv/x"
    assert parse("-").scheme == "stdio"


@pytest.mark.parametrize(
    "text",
    ["", " s3://b/k", "s3:/bucket/key", "3s://b/k", "file://relative/path", "s3://a:b@h/k"],
)
def test_malformed(text: str) -> None:
    with pytest.raises(BadLocation):
        parse(text)


def test_a_store_is_required_where_the_provider_needs_one() -> None:
    from mover.resolve import open_location

    with pytest.raises(BadLocation, match="name the bucket"):
        open_location("memory:///k")


def test_credentials_never_echoed() -> None:
    with pytest.raises(BadLocation) as info:
        parse("s3://AKIA:supersecret@host/k")
    assert "supersecret" not in str(info.value)


def test_key_escaping_root_is_refused(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[stores.images]\nurl = "file://{tmp_path}/root/"\n')
    conf = config.load(cfg)
    with pytest.raises(KeyEscapesRoot):
        resolve_store(parse("store:images/../../etc/passwd"), conf)
    loc, _ = resolve_store(parse("store:images/a/../b.img"), conf)
    assert loc.full_key.endswith("root/b.img")
    with pytest.raises(UnknownStore, match="known: images"):
        resolve_store(parse("store:imagez/x"), conf)


def test_config_refuses_literal_secret(tmp_path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[stores.s]\nurl = "s3://b/"\nsecret_access_key = "x"\n')
    with pytest.raises(config.ConfigError, match="credentials_env"):
        config.load(cfg)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("64MiB", 64 << 20), ("8M", 8 << 20), ("1G", 1 << 30), ("4096", 4096), ("1MB", 1_000_000)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert config.parse_size(text) == expected


def test_query_is_kept_raw_and_not_normalised() -> None:
    loc = parse("http://h/a/b?x=../../c&q=1//2&e=%26")
    assert loc.key == "a/b?x=../../c&q=1//2&e=%26"
    with pytest.raises(KeyEscapesRoot):
        parse("http://h/../etc?x=1")
