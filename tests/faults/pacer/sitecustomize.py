"""I/O pacing for the fault suite: a copy of a few MiB between local files takes milliseconds,
too short to land a fault "after chunk 2 of 6". This module slows down the reads, writes and
syncs a process makes on files under chosen folders, so that the harness can watch a job's
progress and strike at a chosen moment. It changes no result: each call runs unchanged after
a sleep (latency injection, as ``tc netem`` does for a network).

It is loaded by Python itself (``sitecustomize``) in every process whose ``PYTHONPATH`` starts
with this folder and whose environment names a control file in ``MOVER_FAULT_PACE``: the
``mover`` command line, ``mover worker`` and the worker's pool children (after ``exec`` and
``fork`` alike). The control file is JSON, read again when it changes, so that a long-lived
worker follows the harness from one fault to the next::

    {"dirs": ["/tmp/.../src"], "delay_s": 0.05, "sync_delay_s": 0.5}

``sync_delay_s`` (default ``delay_s``) paces the calls that make data durable or visible
(``fsync``, ``fdatasync``, ``rename``, ``replace``): a commit then takes long enough to be hit.
A call is paced when one of its file descriptors (or paths) lies under one of ``dirs``; every
other call (pipes, sockets, the job store) runs at full speed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

_CONTROL = os.environ.get("MOVER_FAULT_PACE", "")
#: Seconds a read of the control file is trusted before its mtime is looked at again.
_RECHECK_S = 0.1

_state: dict[str, Any] = {"checked": 0.0, "mtime": None, "dirs": (), "delay": 0.0, "sync": 0.0}
_SYNC_CALLS = ("fsync", "fdatasync", "rename", "replace")


def _config() -> tuple[tuple[str, ...], float, float]:
    now = time.monotonic()
    if now - _state["checked"] > _RECHECK_S:
        _state["checked"] = now
        try:
            mtime = os.stat(_CONTROL).st_mtime_ns
        except OSError:
            mtime = None
        if mtime != _state["mtime"]:
            _state["mtime"] = mtime
            try:
                with open(_CONTROL) as f:
                    data = json.load(f)
                _state["dirs"] = tuple(os.path.join(d, "") for d in data.get("dirs", ()))
                _state["delay"] = float(data.get("delay_s", 0.0))
                _state["sync"] = float(data.get("sync_delay_s", _state["delay"]))
            except (OSError, ValueError):
                _state["dirs"], _state["delay"], _state["sync"] = (), 0.0, 0.0
    return _state["dirs"], _state["delay"], _state["sync"]


def _fd_path(fd: Any) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{int(fd)}")
    except (OSError, TypeError, ValueError):
        return ""


def _pause(name: str, fds: tuple[Any, ...] = (), paths: tuple[Any, ...] = ()) -> None:
    dirs, delay, sync = _config()
    if name in _SYNC_CALLS:
        delay = sync
    if not dirs or delay <= 0:
        return
    names = [_fd_path(fd) for fd in fds] + [os.fspath(p) for p in paths if p is not None]
    if any(str(name).startswith(dirs) for name in names):
        time.sleep(delay)


def _wrap_fd(name: str, positions: tuple[int, ...]) -> None:
    original: Callable[..., Any] | None = getattr(os, name, None)
    if original is None:
        return

    def paced(*args: Any, **kwargs: Any) -> Any:
        _pause(name, fds=tuple(args[i] for i in positions if i < len(args)))
        return original(*args, **kwargs)

    paced.__name__ = name
    setattr(os, name, paced)


def _wrap_path(name: str) -> None:
    original: Callable[..., Any] | None = getattr(os, name, None)
    if original is None:
        return

    def paced(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
        _pause(name, paths=(src, dst))
        return original(src, dst, *args, **kwargs)

    paced.__name__ = name
    setattr(os, name, paced)


def _install() -> None:
    for name in ("pread", "preadv", "pwrite", "pwritev", "read", "readv", "write", "writev"):
        _wrap_fd(name, (0,))
    for name in ("fsync", "fdatasync", "ftruncate"):
        _wrap_fd(name, (0,))
    _wrap_fd("copy_file_range", (0, 1))
    _wrap_fd("sendfile", (0, 1))
    _wrap_fd("splice", (0, 1))
    for name in ("replace", "rename"):
        _wrap_path(name)


if _CONTROL:
    _install()
