#!/usr/bin/env bash
# The test command: set up .venv (idempotent) and run the whole suite. Extra arguments go to
# pytest (e.g. `bash scripts/test.sh -m "not integration"` for the fast unit tests only).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Three test processes, one test file each at a time (--dist loadfile: a file's tests share its
# servers and fleets): most integration tests wait on workers, brokers and servers, not on the
# CPU, so three overlap well even on two cores. MOVER_TEST_PROCESSES=0 runs in one process.
exec .venv/bin/python -m pytest -n "${MOVER_TEST_PROCESSES:-3}" --dist loadfile "$@"
