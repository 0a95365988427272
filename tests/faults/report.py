"""The fault suite's table and minimum, wherever its tests ran.

Each fault test's record travels in its test report (``user_properties``), and the ledger is
filled from the reports: in one process (plain pytest) and in the controller of ``pytest -n``
alike, where the tests ran in worker processes whose own ledgers the controller never sees.
The hooks are imported by the root ``tests/conftest.py``, which the controller loads (it does
not load ``tests/faults/conftest.py``: it collects nothing).
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile
from pathlib import Path

import pytest

#: The key of a fault record in a test report's ``user_properties``.
PROPERTY = "mover_fault"


def choose_seed(config: pytest.Config) -> None:
    """One seed for the whole run: chosen by the controller (or the only process) before any
    worker starts, so that every worker's faults and the replay hint use the same."""
    if not hasattr(config, "workerinput") and not os.environ.get("MOVER_FAULT_SEED", "").strip():
        os.environ["MOVER_FAULT_SEED"] = str(random.SystemRandom().randrange(1, 2**31))


def attach(item: pytest.Item, record: object) -> None:
    """Put a fault's record in its test's reports (called by the ``fault`` fixture)."""
    item.user_properties.append((PROPERTY, dataclasses.asdict(record)))  # type: ignore[call-overload]


def collect(report: pytest.TestReport) -> None:
    """Add the fault a test report carries to the ledger (once: from its teardown report)."""
    if report.when != "teardown":
        return
    for key, value in report.user_properties:
        if key == PROPERTY:
            from tests.faults.harness import LEDGER, Fault

            LEDGER.add(Fault(**value))


def short_of_minimum() -> str | None:
    """Why a full run of every family did not inject enough faults, or None."""
    from tests.faults.harness import FAMILY_ORDER, LEDGER, MIN_FAULTS, QUICK

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


def summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The table at the end of the session (not in ``pytest -n`` workers: nobody reads them)."""
    from tests.faults.harness import LEDGER

    if not LEDGER.faults or hasattr(terminalreporter.config, "workerinput"):
        return
    terminalreporter.section("fault suite")
    for line in LEDGER.report().splitlines():
        terminalreporter.write_line(line)
    path = LEDGER.write(_report_dir(terminalreporter.config))
    terminalreporter.write_line(f"\n(table written to {path})")
    short = short_of_minimum()
    if short:
        terminalreporter.write_line(f"FAILED: {short}", red=True)


def finish(session: pytest.Session) -> None:
    """Too few faults, or a bad one, fail the session (bad ones already failed their tests)."""
    from tests.faults.harness import BAD, LEDGER

    if hasattr(session.config, "workerinput"):
        return
    if short_of_minimum() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if any(f.outcome == BAD for f in LEDGER.faults) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
