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

    [fleet]                              # the fleet's services (the environment wins)
    broker_url = "amqp://mover@rabbit.example:5672/mover"   # password: MOVER_BROKER_PASSWORD
    jobs_url = "rediss://mover@redis.example:6380/0"        # password: MOVER_JOBS_PASSWORD
    catalogue_url = "postgresql://mover@db.example/mover"   # password: MOVER_CATALOGUE_PASSWORD

A ``[fleet]`` URL holding a password is refused: the password of each service comes from its
``*_PASSWORD`` environment variable only (:func:`fleet_setting` puts it into the URL in this
process's memory).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from mover import credentials
from mover.credentials import check_not_url_with_secret  # noqa: F401  (its old home)
from mover.dirs import user_dir
from mover.errors import ConfigError, UsageError
from mover.redact import redact

#: The fleet's service settings: ``[fleet]`` key -> (environment variable, password variable).
FLEET_SETTINGS = {
    "broker_url": ("MOVER_BROKER_URL", "MOVER_BROKER_PASSWORD"),
    "result_backend": ("MOVER_RESULT_BACKEND", "MOVER_RESULT_BACKEND_PASSWORD"),
    "jobs_url": ("MOVER_JOBS_URL", "MOVER_JOBS_PASSWORD"),
    "catalogue_url": ("MOVER_CATALOGUE_URL", "MOVER_CATALOGUE_PASSWORD"),
}


@dataclass
class Config:
    """The parsed configuration: named stores, defaults (``[defaults]``: only ``placement``
    is read; copy options are given per command or call) and the fleet's services."""

    stores: dict[str, dict[str, Any]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    fleet: dict[str, str] = field(default_factory=dict)


def config_path() -> Path:
    """``MOVER_CONFIG``, else ``config.toml`` in the user's configuration directory.

    Asked per chunk on the fleet (store limits, metrics labels): the answer is kept per value
    of the variables it depends on, so a changed environment still gives a changed path."""
    environ = os.environ
    return _config_path(
        environ.get("MOVER_CONFIG"), environ.get("XDG_CONFIG_HOME"), environ.get("HOME")
    )


@functools.lru_cache(maxsize=16)
def _config_path(env: str | None, xdg: str | None, home: str | None) -> Path:
    if env:
        return Path(env)
    return Path(user_dir("config")) / "config.toml"


def load(path: Path | None = None) -> Config:
    """Read the configuration; a missing file is an empty configuration."""
    path = path or config_path()
    if not path.exists():
        return Config(path=None)
    import tomllib  # only when there is a file to read

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
    fleet = _fleet_table(path, data.get("fleet", {}) or {})
    return Config(stores=stores, defaults=data.get("defaults", {}) or {}, path=path, fleet=fleet)


def _fleet_table(path: Path, table: Any) -> dict[str, str]:
    """Check the ``[fleet]`` table: known keys, string values, no password in a URL."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [fleet] must be a table")
    for key, value in table.items():
        if key not in FLEET_SETTINGS:
            raise ConfigError(
                f"{path}: [fleet] {key!r} is not a setting (known: {', '.join(FLEET_SETTINGS)})"
            )
        if not isinstance(value, str):
            raise ConfigError(f"{path}: [fleet] {key} must be a URL string")
        try:
            password = urlsplit(value).password
        except ValueError as exc:
            raise ConfigError(f"{path}: [fleet] {key} is not a URL") from exc
        if password:
            raise ConfigError(
                f"{path}: [fleet] {key} holds a password; remove it from the file and set "
                f"{FLEET_SETTINGS[key][1]} in the environment"
            )
    return dict(table)


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` in its user info (an existing password is kept)."""
    parts = urlsplit(url)
    if parts.password or not parts.netloc:
        return url
    user, _, host = parts.netloc.rpartition("@")
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def fleet_setting(name: str, config: Config | None = None) -> str | None:
    """A fleet service's URL (``broker_url``, ``result_backend``, ``jobs_url``,
    ``catalogue_url``): its environment variable, else ``[fleet]`` in the configuration
    file; with the password of its ``*_PASSWORD`` variable put in when the URL has none.
    None when neither sets it."""
    env_name, password_name = FLEET_SETTINGS[name]
    url = os.environ.get(env_name)
    if not url:
        config = config if config is not None else load()
        url = config.fleet.get(name)
    if not url:
        return None
    password = os.environ.get(password_name)
    return with_password(url, password) if password else url


#: Broker URL schemes by kind; the job records, heartbeats and statistics need Redis.
REDIS_SCHEMES = ("redis", "rediss", "unix")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
#: The broker when none is configured (the fleet's historical default).
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"


def url_scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def broker_url() -> str:
    """The fleet's broker: ``MOVER_BROKER_URL`` or ``[fleet] broker_url`` (password from
    ``MOVER_BROKER_PASSWORD``), else :data:`DEFAULT_BROKER_URL`. Raises a one-line
    :class:`ConfigError` for a scheme Celery cannot use here."""
    url = fleet_setting("broker_url") or DEFAULT_BROKER_URL
    if url_scheme(url) not in REDIS_SCHEMES + AMQP_SCHEMES:
        raise ConfigError(
            f"MOVER_BROKER_URL {redact(url)}: the broker must be redis://, rediss:// (Redis) or "
            "amqp://, amqps:// (RabbitMQ)"
        )
    return url


def jobs_url() -> str:
    """Where the fleet's job records, heartbeats and statistics live: ``MOVER_JOBS_URL`` (or
    ``[fleet] jobs_url``), else the broker when it is Redis. A RabbitMQ broker holds no job
    records: then ``MOVER_JOBS_URL`` is required, and its absence is one line that says so."""
    url = fleet_setting("jobs_url")
    if url is None:
        broker = broker_url()
        if url_scheme(broker) not in REDIS_SCHEMES:
            raise ConfigError(
                f"the broker {redact(broker)} is RabbitMQ, which holds no job records: set "
                "MOVER_JOBS_URL=redis://HOST:6379/0 (a Redis for job records, heartbeats and "
                "statistics)"
            )
        url = broker
    if url_scheme(url) not in REDIS_SCHEMES:
        raise ConfigError(
            f"MOVER_JOBS_URL {redact(url)}: the fleet's job records need Redis "
            "(redis://, rediss:// or unix://)"
        )
    return url


def result_backend() -> str:
    """Celery's result backend (only ``mover.submit`` keeps a result): ``MOVER_RESULT_BACKEND``
    (or ``[fleet] result_backend``), else the broker when it is Redis, else the job store's
    Redis. Never ``amqp://``: Celery 5 has no such backend, and a worker would die on it."""
    url = fleet_setting("result_backend")
    if url is None:
        broker = broker_url()
        return broker if url_scheme(broker) in REDIS_SCHEMES else jobs_url()
    if url_scheme(url) in AMQP_SCHEMES:
        raise ConfigError(
            f"MOVER_RESULT_BACKEND {redact(url)}: Celery 5 has no amqp result backend; use "
            "redis://... (or leave it unset: the job store's Redis is used)"
        )
    return url


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
