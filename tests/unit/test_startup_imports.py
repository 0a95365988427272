"""Start-up budget (issue 10 item 4): what ``mover`` imports before it needs it.

Structural, not timed (timings on a shared machine are noise): a fresh interpreter runs the
command and reports which modules it loaded. The heavy libraries (boto3/botocore, the CRT,
Celery, kombu, Redis, swiftclient/requests) cost 0.05-0.4 s each to import; a command that does
not use them must not load them. Module counts are a budget with head room, so that an import
added by accident to a hot module shows here rather than as a slower ``mover copy``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: Libraries that none of the checked commands needs.
HEAVY = (
    "boto3",
    "botocore",
    "awscrt",
    "celery",
    "kombu",
    "redis",
    "swiftclient",
    "requests",
    "crc32c",  # 15 ms: it reads its own version from the installed metadata
    "ctypes",  # loading the C library by name ran `ldconfig -p` in a subprocess
    "platformdirs",  # 10 ms for two environment variables (mover.dirs)
)
#: Module budgets, about 10 % above today's counts (122 for the import, 137 for ``--help``,
#: 225 for a file copy: the plugin registry reads entry points without importlib.metadata).
IMPORT_BUDGET = 135
HELP_BUDGET = 150
FILE_COPY_BUDGET = 250

_PROBE = """
import json, sys
argv = json.loads(sys.argv[1])
if argv:
    from mover.cli.main import main
    sys.argv = ["mover", *argv]
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
else:
    import mover.cli.main  # noqa: F401
print(json.dumps(sorted(sys.modules)))
"""


def _loaded(argv: list[str], tmp_path: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOVER_", "ST_"))}
    env["MOVER_STATE_DIR"] = str(tmp_path / "state")
    env["MOVER_CONFIG"] = str(tmp_path / "none.toml")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _heavy(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


def test_importing_the_cli_loads_nothing_heavy(tmp_path: Path) -> None:
    modules = _loaded([], tmp_path)
    assert _heavy(modules) == []
    assert len(modules) < IMPORT_BUDGET, f"{len(modules)} modules for `import mover.cli.main`"


def test_help_loads_nothing_heavy(tmp_path: Path) -> None:
    modules = _loaded(["--help"], tmp_path)
    assert _heavy(modules) == []
    assert len(modules) < HELP_BUDGET, f"{len(modules)} modules for `mover --help`"


def test_file_copy_loads_no_sdk_and_no_broker(tmp_path: Path) -> None:
    source = tmp_path / "one.bin"
    source.write_bytes(b"x")
    modules = _loaded(["copy", str(source), str(tmp_path / "copy.bin")], tmp_path)
    assert (tmp_path / "copy.bin").read_bytes() == b"x"
    assert _heavy(modules) == []
    # the plugin registry reads entry points itself (importlib.metadata: 10 ms and more)
    assert "importlib.metadata" not in modules
    assert len(modules) < FILE_COPY_BUDGET, f"{len(modules)} modules for a file copy"


def test_importtime_names_no_heavy_module(tmp_path: Path) -> None:
    """``python -X importtime``: every module the import of the CLI really executed (a module
    already loaded by site would not be in ``sys.modules`` checks above otherwise)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import mover.cli.main"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    names = [
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line and "imported package" not in line
    ]
    assert names, done.stderr[-500:]
    assert _heavy(names) == []
    assert len(names) < IMPORT_BUDGET
