"""The wheel installs one top-level package, ``mover``, with every package folder inside it,
and the test plugin stays out of the user's environment."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAPPED = {"mover": "mover", "strategies": "mover.strategies", "workers": "mover.workers"}


def _declared() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]["packages"]


def test_every_package_folder_is_declared() -> None:
    found = set()
    for top, name in MAPPED.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((name, *rel)))
    # Folders of data only (the dashboard's page) are declared too, with their package-data.
    data_only = {
        name
        for name in _declared()
        if not (ROOT / _folder(name)).joinpath("__init__.py").exists()
        and (ROOT / _folder(name)).is_dir()
    }
    assert found | data_only == set(_declared()), (
        "pyproject's [tool.setuptools] packages is out of date"
    )


def _folder(package: str) -> Path:
    """The repository folder of an installed package name (package-dir mapping)."""
    parts = package.split(".")
    for installed, top in (("mover.strategies", "strategies"), ("mover.workers", "workers")):
        if package == installed or package.startswith(installed + "."):
            return Path(top, *parts[2:])
    return Path(*parts)


@pytest.mark.slow
def test_wheel_has_one_top_level_package(tmp_path: Path) -> None:
    # An isolated build, as pip does for users (pyproject asks for setuptools>=77).
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("mover-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"mover"}
    assert "mover/strategies/motion/streaming.py" in names
    assert "mover/workers/tasks.py" in names
    # The dashboard's page is package data: a wheel without it serves 500s.
    static = {f"mover/monitor/static/dashboard.{ext}" for ext in ("html", "js", "css")}
    assert static <= set(names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "= strategies." not in text and "= workers." not in text


def test_test_plugin_is_not_installed_in_the_venv() -> None:
    """The plugin is on this run's path (tests/testplugin.py), not in site-packages."""
    import importlib.metadata as md

    dist = md.distribution("mover-testplugin")
    assert "site-packages" not in str(dist._path)  # type: ignore[attr-defined]
    venv_python = ROOT / ".venv" / "bin" / "python"
    if not venv_python.exists():
        pytest.skip("no .venv in this checkout")
    names = "[d.metadata['Name'] for d in m.distributions()]"
    script = f"import importlib.metadata as m; print({names})"
    clean_env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    out = subprocess.run(
        [
            str(venv_python),
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        env=clean_env,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr
    assert "mover-testplugin" not in out.stdout
    assert "mover_testplugin" not in out.stdout
