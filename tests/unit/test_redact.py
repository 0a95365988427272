"""Signed URLs: which query parameters are credentials, and what records and logs keep."""

from __future__ import annotations

import logging

import pytest

from mover import redact
from mover.errors import UsageError
from mover.location import parse

PRESIGNED = (
    "https://bucket.s3.amazonaws.com/x.qcow2?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=0123456789abcdef"
)


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        (PRESIGNED, ["X-Amz-Credential", "X-Amz-Signature"]),
        ("https://a.blob.core.windows.net/c/x?sv=2020&sp=r&sig=abc%2Bdef", ["sig"]),
        ("https://h/x?temp_url_sig=abc&temp_url_expires=1", ["temp_url_sig"]),
        (
            "https://cdn/x?Policy=p&Signature=s&Key-Pair-Id=k",
            ["Policy", "Signature", "Key-Pair-Id"],
        ),
        (
            "https://h/x?token=t&access_token=u&X-Goog-Signature=g",
            ["token", "access_token", "X-Goog-Signature"],
        ),
        ("https://h/x?version=2&part=1", []),
        ("https://h/x", []),
    ],
)
def test_secret_params(url: str, secrets: list[str]) -> None:
    assert redact.secret_params(url) == secrets
    shown = redact.redact(url)
    for name in secrets:
        assert f"{name}=REDACTED" in shown
    assert ("REDACTED" in shown) == bool(secrets)


def test_redact_keeps_everything_else_and_is_idempotent() -> None:
    shown = redact.redact(PRESIGNED)
    assert "AKIAEXAMPLE" not in shown and "0123456789abcdef" not in shown
    assert "X-Amz-Date=20260101T000000Z" in shown and "X-Amz-Expires=3600" in shown
    assert redact.redact(shown) == shown
    text = f"GET {PRESIGNED} failed; see also {PRESIGNED}"
    assert "0123456789abcdef" not in redact.redact(text)


def test_location_shows_the_redacted_url_and_keeps_the_real_one() -> None:
    loc = parse(PRESIGNED)
    assert "0123456789abcdef" in loc.url
    assert "0123456789abcdef" not in str(loc) and "0123456789abcdef" not in loc.shown


def test_remember_and_reveal() -> None:
    recorded = redact.remember(PRESIGNED)
    try:
        assert "REDACTED" in recorded and redact.reveal(recorded) == PRESIGNED
        assert redact.recalled(recorded)
    finally:
        redact.forget(recorded)
    assert not redact.recalled(recorded)
    with pytest.raises(UsageError, match="--source"):
        redact.reveal(recorded)
    assert redact.reveal("https://h/x?part=1") == "https://h/x?part=1"


def test_log_filter_cuts_credentials(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redact")
    handler = logging.Handler()
    seen: list[str] = []
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    handler.addFilter(redact.RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("GET %s", PRESIGNED)
    finally:
        logger.removeHandler(handler)
    assert seen and "0123456789abcdef" not in seen[0] and "X-Amz-Signature=REDACTED" in seen[0]
