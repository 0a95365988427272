"""Shared fixtures: every test gets its own job-store directory and an empty memory store."""

from __future__ import annotations

import shutil

import pytest

from tests import testplugin
from tests.faults import report as fault_report
from tests.fixtures_servers import *  # noqa: F403  (one S3, Swift, Redis for the whole session)

# Before any test imports mover: the registries read entry points on first use.
_PLUGIN_METADATA = testplugin.activate()


def pytest_configure(config: pytest.Config) -> None:
    fault_report.choose_seed(config)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    fault_report.collect(report)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    fault_report.summary(terminalreporter)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    fault_report.finish(session)
    if not hasattr(session.config, "workerinput"):
        shutil.rmtree(_PLUGIN_METADATA, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("MOVER_STATE_DIR", str(state))
    monkeypatch.setenv("MOVER_CONFIG", str(state / "config.toml"))
    # A test without S3 credentials must fail on them, never ask the EC2 metadata address
    # (botocore's last resort): tests talk to loopback only.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    from mover import resolve
    from mover.providers import memory

    memory.reset()
    resolve.clear_cache()
    yield
    resolve.clear_cache()
