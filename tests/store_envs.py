"""Point mover's providers at the session's servers through the environment, as a user's
shell would (boto3's chain for S3, ``ST_*`` for Swift), with no user file read."""

from __future__ import annotations

import os
from typing import Any

import pytest


def use_s3(monkeypatch: pytest.MonkeyPatch, server: Any) -> None:
    """The SeaweedFS server's endpoint and keys; no AWS config or credentials file."""
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


def use_swift(monkeypatch: pytest.MonkeyPatch, server: Any) -> None:
    """The Swift server's v1 auth; any other ``ST_*`` / ``OS_*`` variable removed."""
    for name in [n for n in os.environ if n.startswith(("ST_", "OS_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ST_AUTH", server.auth_url)
    monkeypatch.setenv("ST_USER", server.user)
    monkeypatch.setenv("ST_KEY", server.key)
