"""The host and its programs: where a tool is, its version, the load, the revision."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .base import REPO, GiB, KiB, MiB


def find_program(name: str, override: str | None = None) -> str | None:
    """Find ``name`` next to this interpreter first (a venv's bin/ need not be on PATH)."""
    if override:
        return override if os.access(override, os.X_OK) else None
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def version(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    """The first line a program prints about its version, or ``?``."""
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        return f"? ({exc.strerror})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: above the CPU count, other work competed."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "?"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def git_revision(where: Path = REPO) -> str:
    """The short revision of ``where``, with ``+changes`` when mover's code is not committed."""
    rev = subprocess.run(
        ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if rev.returncode != 0:
        return f"{where} (not a git checkout)"
    dirty = subprocess.run(
        ["git", "-C", str(where), "status", "--porcelain", "--", "mover", "strategies", "workers"],
        capture_output=True,
        text=True,
        check=False,
    )
    return rev.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def fs_type(path: Path) -> str:
    """The file system type of ``path``, from the longest matching mount point."""
    best, kind = "", "?"
    with contextlib.suppress(OSError), open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], f"{parts[2]} on {parts[0]}"
    return kind


def parse_size(text: str) -> int:
    """``64MiB``, ``8M``, ``1G``, ``4096`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*(KiB|MiB|GiB|K|M|G|KB|MB|GB)?\s*", text)
    if not m:
        raise SystemExit(f"not a size: {text!r} (e.g. 64MiB)")
    unit = {"": 1, "K": KiB, "M": MiB, "G": GiB}[(m.group(2) or "")[:1]]
    return int(m.group(1)) * unit
