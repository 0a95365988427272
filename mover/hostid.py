"""Who is this host, and is a process of it still running.

Leases (:mod:`mover.repository.locks`) and temporary files (:mod:`mover.providers.posix`) name
their writer by host, boot and process id, so that a later process on the same host can tell
for certain that the writer is gone (``kill -9``, a crash) and clear what it left. Another
host's writer is never judged here: its process table is not ours.
"""

from __future__ import annotations

import hashlib
import os
import socket


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


#: This host's name and boot id (empty where the kernel does not say: then nothing is judged).
HOST, BOOT = socket.gethostname(), _boot_id()
#: A short token for this host and boot, for names where the whole of both would not fit.
HOST_TAG = hashlib.blake2b(f"{HOST}\0{BOOT}".encode(), digest_size=4).hexdigest()


def running(pid: int) -> bool:
    """True unless ``pid`` is certainly gone on this host (a process of another user counts
    as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def gone_here(host: str, boot: str, pid: int) -> bool:
    """The writer ``(host, boot, pid)`` is of this host and boot, and its process is gone."""
    return bool(BOOT) and host == HOST and boot == BOOT and not running(pid)
