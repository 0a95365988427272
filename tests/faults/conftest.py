"""Fixtures and hooks of the fault suite: one :class:`Fault` record per test, the seed printed
when the suite starts, and the table printed at the end of the session and written to
``.pytest_cache/d/faults/faults-table.md`` (with ``faults.json``, every fault's parameters).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faultproxy import FaultProxy
from tests.faults import rigs
from tests.faults.harness import BAD, FAMILY_ORDER, LEDGER, MIN_FAULTS, QUICK, SEED, Fault
from tests.fixtures_servers import _serve
from tests.integration.test_fleet import Fleet
from tests.servers import RedisServer

#: A server fixture as a context manager (start, yield, stop; skip or fail when missing).
serving = contextlib.contextmanager(_serve)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Print the seed before the first fault runs (when any fault test was selected)."""
    if not any(getattr(item.module, "FAMILY", None) for item in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    capture = session.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    mode = "quick" if QUICK else "full"
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line(
            f"fault suite: seed {SEED} ({mode}; replay with MOVER_FAULT_SEED={SEED})"
        )


@pytest.fixture
def fault(request: pytest.FixtureRequest) -> Iterator[Fault]:
    """The record of this test's fault; a test sets its parameters and outcome."""
    record = Fault(request.module.FAMILY, request.node.name)
    started = time.monotonic()
    yield record
    record.seconds = time.monotonic() - started
    if record.outcome is not None:
        LEDGER.add(record)


@pytest.fixture(scope="session")
def fault_fleet(s3_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Two real workers (prefork, -c 2) on a private Redis that faults may restart or kill,
    with a fault proxy in front of the S3 server (store ``faulty``) and an I/O pacer.

    Visibility time-out 5 s and restore sweep 1 s: a dead worker's chunks come back within
    about 7 s. Shared by every fleet family; :meth:`FaultFleet.ensure` replaces the workers a
    fault killed before the next one starts.
    """
    import boto3

    folder = tmp_path_factory.mktemp("fault-fleet")
    client = boto3.client("s3", **s3_server.client_kwargs())
    with (
        rigs.bucket(client, "faults-fleet") as bucket,
        serving(RedisServer) as redis,
        FaultProxy("127.0.0.1", s3_server.port) as proxy,
    ):
        pace = rigs.Pace(folder / "pace.json")
        rigs.write_config(
            folder,
            {
                "faulty": {
                    "url": f"s3://{bucket}/",
                    "endpoint_url": proxy.url,
                    "read_timeout": 3,
                    "connect_timeout": 3,
                }
            },
        )
        env = rigs.mover_env(
            folder,
            pace,
            **s3_server.env(),
            MOVER_BROKER_URL=redis.url,
            MOVER_VISIBILITY_TIMEOUT_S="5",
            MOVER_RESTORE_INTERVAL_S="1",
            MOVER_CHUNK_RETRIES="5",
        )
        fleet = rigs.FaultFleet(
            Fleet(redis, env, folder, s3=s3_server), proxy, pace, client, bucket
        )
        try:
            fleet.ensure()
            yield fleet
        finally:
            for worker in fleet.fleet.workers:
                fleet.fleet.stop(worker)


def _short_of_minimum() -> str | None:
    """Why a full run of every family did not inject enough faults, or None."""
    families = {f.family for f in LEDGER.faults}
    if QUICK or not set(FAMILY_ORDER) <= families:
        return None
    injected = LEDGER.totals()[0]
    if injected >= MIN_FAULTS:
        return None
    return f"only {injected} faults were injected; a full run must inject at least {MIN_FAULTS}"


def _report_dir(config: pytest.Config) -> Path:
    """``MOVER_FAULT_REPORT_DIR``, else pytest's cache folder, else the temporary folder."""
    chosen = os.environ.get("MOVER_FAULT_REPORT_DIR")
    if chosen:
        return Path(chosen)
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("faults"))
    return Path(tempfile.gettempdir()) / "mover-faults"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not LEDGER.faults:
        return
    terminalreporter.section("fault suite")
    for line in LEDGER.report().splitlines():
        terminalreporter.write_line(line)
    path = LEDGER.write(_report_dir(terminalreporter.config))
    terminalreporter.write_line(f"\n(table written to {path})")
    short = _short_of_minimum()
    if short:
        terminalreporter.write_line(f"FAILED: {short}", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Bad faults already failed their tests; too few faults fail the session here.
    if _short_of_minimum() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if any(f.outcome == BAD for f in LEDGER.faults) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
