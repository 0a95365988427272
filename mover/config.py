"""Configuration: named stores and defaults, from a TOML file. A leaf: it parses the file and
nothing more (``store:NAME`` is resolved by :func:`mover.resolve.resolve`, which asks this
configuration, then the catalogue).

The file is ``$MOVER_CONFIG`` or ``<user config dir>/mover/config.toml``. It never holds a
secret: a store names where its credentials come from (an environment variable or a file), and
each process resolves them itself::

    [defaults]
    placement = "capacity"               # the placement rule (mover.catalogue.placement)

    [stores.images]
    url = "file:///srv/images/"          # a root: keys may never leave it

    [stores.backup-east]
    url = "s3://backups/templates/"
    endpoint_url = "http://127.0.0.1:8333"
    credentials_env = "BACKUP_EAST"      # reads BACKUP_EAST_ACCESS_KEY_ID / _SECRET_ACCESS_KEY
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from mover import credentials
from mover.credentials import check_not_url_with_secret  # noqa: F401  (its old home)
from mover.errors import ConfigError, UsageError


@dataclass
class Config:
    """The parsed configuration: named stores and defaults (``[defaults]``: only
    ``placement`` is read; copy options are given per command or call)."""

    stores: dict[str, dict[str, Any]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def config_path() -> Path:
    env = os.environ.get("MOVER_CONFIG")
    if env:
        return Path(env)
    return Path(platformdirs.user_config_dir("mover")) / "config.toml"


def load(path: Path | None = None) -> Config:
    """Read the configuration; a missing file is an empty configuration."""
    path = path or config_path()
    if not path.exists():
        return Config(path=None)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
    stores = data.get("stores", {}) or {}
    for name, table in stores.items():
        if not isinstance(table, dict) or "url" not in table:
            raise ConfigError(f"{path}: store {name!r} needs a url")
        credentials.refuse_secrets(
            table,
            f"{path}: store {name!r}",
            "put secrets in the environment or a file and name it with credentials_env or "
            "credentials_file",
        )
    return Config(stores=stores, defaults=data.get("defaults", {}) or {}, path=path)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_size(text: str | int) -> int:
    """``64M``, ``64MiB``, ``1.5G``, ``4096`` -> bytes. Suffixes are binary (as in rclone)
    unless written ``KB``/``MB``/``GB``, which are decimal."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise UsageError(f"not a size: {text!r} (try 64MiB, 8M, 1G)")
    number, unit = float(m.group(1)), (m.group(2) or "").lower()
    letter = unit[:1]
    if letter not in _UNITS:
        raise UsageError(f"not a size: {text!r}")
    decimal = unit.endswith("b") and not unit.endswith("ib") and len(unit) == 2
    base = _UNITS[letter] if decimal else 1024 ** "bkmgt".index(letter) if letter else 1
    return int(number * base)
