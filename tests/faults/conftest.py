"""Fixtures and hooks of the fault suite: one :class:`Fault` record per test, the seed printed
when the suite starts, and the table printed at the end of the session and written to
``.pytest_cache/d/faults/faults-table.md`` (with ``faults.json``, every fault's parameters).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.faultproxy import FaultProxy
from tests.faults import report, rigs
from tests.faults.harness import QUICK, SEED, Fault
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
        report.attach(request.node, record)  # the ledger takes it from the test's report


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
