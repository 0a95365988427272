"""The repository's optional libraries, imported on first use with the registry's kind of error.

The repository needs ``cryptography`` (AES-256-GCM), ``zstandard``, ``blake3`` and
``argon2-cffi``; they come with the ``repository`` extra (``pip install 'mover[repository]'``),
so that ``mover copy`` never pays for them. A missing one is a one-line
:class:`~mover.errors.ConfigError` that names the package and the fix, raised before anything
is read or written.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mover.errors import ConfigError

#: Module name -> the distribution that provides it.
PACKAGES = {
    "cryptography": "cryptography",
    "zstandard": "zstandard",
    "blake3": "blake3",
    "argon2": "argon2-cffi",
}


def require(module: str) -> ModuleType:
    """Import ``module`` (a key of :data:`PACKAGES`, or a submodule of one)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".", 1)[0]
        dist = PACKAGES.get(top, top)
        raise ConfigError(
            f"the backup repository needs {dist}: pip install 'mover[repository]'"
        ) from None
