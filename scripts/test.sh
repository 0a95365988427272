#!/usr/bin/env bash
# The test command: set up .venv (idempotent) and run the whole suite. Extra arguments go to
# pytest (e.g. `bash scripts/test.sh -m "not integration"` for the fast unit tests only).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
