"""Make the third-party test plugin (``tests/plugins/mover-testplugin``) visible to this test
run only, exactly as an installed distribution would be, without installing it anywhere.

Entry points are found through ``*.dist-info`` folders on ``sys.path``. At the start of the
session this writes one for the plugin into a temporary folder, from the plugin's own
``pyproject.toml`` (its single source of truth), and puts that folder and the plugin's source
on ``sys.path`` and ``PYTHONPATH`` (so that the ``mover`` CLI and Celery workers the tests start
see it too). The user's virtual environment never holds it: ``mover plugins`` there lists no
test plugin after a test run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import tomllib
from pathlib import Path

PLUGIN_DIR = Path(__file__).parent / "plugins" / "mover-testplugin"


def _dist_info(target: Path) -> Path:
    project = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    info = target / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        f"Summary: {project.get('description', '')}\n"
    )
    lines: list[str] = []
    for group, entries in project.get("entry-points", {}).items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in entries.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    (info / "top_level.txt").write_text("mover_testplugin\n")
    return info


def activate() -> Path:
    """Put the plugin on this process's path and on its children's; return the metadata
    folder. Idempotent."""
    existing = os.environ.get("MOVER_TEST_PLUGIN_PATH")
    if existing and Path(existing).is_dir():
        target = Path(existing)
    else:
        target = Path(tempfile.mkdtemp(prefix="mover-testplugin-"))
        _dist_info(target)
        os.environ["MOVER_TEST_PLUGIN_PATH"] = str(target)
    for entry in (str(PLUGIN_DIR), str(target)):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    for entry in (str(target), str(PLUGIN_DIR)):
        if entry not in parts:
            parts.insert(0, entry)
    os.environ["PYTHONPATH"] = os.pathsep.join(parts)
    return target
