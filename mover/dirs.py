"""Where mover keeps its files when the environment does not say: the platform's directories
for configuration and state (XDG on Linux), found without importing ``platformdirs``.

``platformdirs`` costs about 10 ms of import per command, a twentieth of a small copy's whole
time; on Linux its answer is two environment variables and a default, computed here. Other
platforms ask ``platformdirs`` itself.
"""

from __future__ import annotations

import os
import sys

#: XDG variable and default (under the home directory) per kind of directory.
_XDG = {
    "config": ("XDG_CONFIG_HOME", "~/.config"),
    "state": ("XDG_STATE_HOME", "~/.local/state"),
}


def user_dir(kind: str) -> str:
    """The user's ``kind`` directory for mover (``config`` or ``state``), as platformdirs'
    ``user_<kind>_dir("mover")`` answers it."""
    if sys.platform.startswith("linux"):
        variable, default = _XDG[kind]
        base = os.environ.get(variable, "").strip() or os.path.expanduser(default)
        return os.path.join(base, "mover")
    import platformdirs

    return str(getattr(platformdirs, f"user_{kind}_dir")("mover"))


def state_dir() -> str:
    """``MOVER_STATE_DIR``, else the user's state directory for mover."""
    return os.environ.get("MOVER_STATE_DIR") or user_dir("state")
