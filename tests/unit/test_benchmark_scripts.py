"""Every benchmark script imports and answers ``--help`` (issue 14).

The scripts are not run by the test suite (they time things for minutes), so a name one of them
imports from another or from the harness could go missing unseen: ``bench_metrics.py`` did,
when the fleet helpers it took from ``bench_fleet.py`` moved into the harness. Each script runs
here in a fresh interpreter, as a user would start it, which imports it and everything it
imports at module level, and builds its argument parser.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


def test_the_scripts_are_found() -> None:
    assert {"bench_all.py", "bench_metrics.py", "peer_boto3.py"} <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_script_imports_and_answers_help(script: Path) -> None:
    argv = [sys.executable, str(script), "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("usage:"), done.stdout[:500]
