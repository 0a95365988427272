"""Where a repository's key comes from: a reference in the store's configuration, never the
secret itself.

A store that holds a repository names its key with one of these options (``mover stores add
... -o repository_key_env=VAR`` or the TOML ``[stores.NAME]`` table):

``repository_key_env = "VAR"``
    the passphrase is in the environment variable ``VAR`` of each process that opens the
    repository (the CLI, every worker);
``repository_key_file = "/etc/mover/keys/region.key"``
    the passphrase (or random key material) is the content of this file, read by each process;
``repository_encryption = "none"``
    an unencrypted repository, on purpose. Without one of the three, nothing is written.

The catalogue's rule refuses an option that would hold a secret, so these references are all a
catalogue, a Celery task or a log ever sees. Unlocking costs an Argon2id derivation, so each
process keeps the master keys it unlocked, by repository id and secret digest.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mover.errors import ConfigError, UsageError
from mover.repository.crypto import BadKey, MasterKey, unwrap

KEY_ENV = "repository_key_env"
KEY_FILE = "repository_key_file"
ENCRYPTION = "repository_encryption"

_UNLOCKED: dict[tuple[str, bytes], MasterKey] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class KeyRef:
    """A reference to a repository's secret: an environment variable or a file."""

    kind: str  #: "env" or "file"
    name: str  #: the variable's name or the file's path

    def describe(self) -> str:
        return f"${self.name}" if self.kind == "env" else f"key file {self.name}"

    def secret(self, where: str) -> bytes:
        """The secret's bytes, read now, in this process; errors never quote it."""
        if self.kind == "env":
            value = os.environ.get(self.name)
            if not value:
                raise ConfigError(
                    f"{where}: the repository key is read from ${self.name}, which is not set "
                    "in this process: export it (workers need it too)"
                )
            return value.encode()
        try:
            with open(self.name, "rb") as f:
                data = f.read().rstrip(b"\r\n")
        except OSError as exc:
            raise ConfigError(
                f"{where}: cannot read the repository key file {self.name}: {exc.strerror}"
            ) from exc
        if not data:
            raise ConfigError(f"{where}: the repository key file {self.name} is empty")
        return data


def key_ref(options: dict[str, Any], store: str) -> KeyRef | None:
    """The key reference of store ``store``'s options; None when it asks for no encryption.

    Raises when the options name none of the three choices, or contradict each other.
    """
    where = f"store {store!r}"
    env, path = options.get(KEY_ENV), options.get(KEY_FILE)
    plain = str(options.get(ENCRYPTION, "")).lower() == "none"
    if env and path:
        raise UsageError(f"{where}: give {KEY_ENV} or {KEY_FILE}, not both")
    if plain and (env or path):
        raise UsageError(f"{where}: {ENCRYPTION}=none contradicts the key it names")
    if env:
        return KeyRef("env", str(env))
    if path:
        if not os.path.isabs(str(path)):
            raise ConfigError(f"{where}: {KEY_FILE} must be an absolute path")
        return KeyRef("file", str(path))
    if plain:
        return None
    raise ConfigError(
        f"{where}: no repository key configured: mover stores set {store} -o {KEY_ENV}=VAR "
        f"(a passphrase in $VAR), or -o {KEY_FILE}=/path, or -o {ENCRYPTION}=none for an "
        "unencrypted repository"
    )


def unlock(
    repo_id: str,
    key_objects: Callable[[], list[tuple[str, bytes]]],
    ref: KeyRef,
    where: str,
    belongs: Callable[[MasterKey], bool] = lambda _master: True,
) -> MasterKey:
    """The master key that ``ref``'s secret opens among the key objects (name, bytes) that
    ``key_objects`` reads (only when this process has not unlocked it yet), and that
    ``belongs`` to the repository's configuration.

    A wrong secret is one line naming the reference and the fix, never garbage later.
    """
    secret = ref.secret(where)
    cache = (repo_id, hashlib.sha256(secret).digest())
    with _LOCK:
        hit = _UNLOCKED.get(cache)
    if hit is not None:
        return hit
    objects = key_objects()
    if not objects:
        raise ConfigError(f"{where}: the repository has no key object (keys/ is empty)")
    for _name, data in objects:
        try:
            master = unwrap(data, secret)
        except BadKey:
            continue
        if not belongs(master):
            continue  # a key of an init that was killed before its config was written
        with _LOCK:
            _UNLOCKED[cache] = master
        return master
    raise BadKey(
        f"{where}: wrong repository key: {ref.describe()} opens none of its "
        f"{len(objects)} key(s); give the passphrase or key file it was created with"
    )


def remember(repo_id: str, secret: bytes, master: MasterKey) -> None:
    """Keep a master key this process just created, as if unlocked with ``secret``."""
    with _LOCK:
        _UNLOCKED[(repo_id, hashlib.sha256(secret).digest())] = master


def forget_unlocked() -> None:
    """Drop the master keys this process unlocked (tests)."""
    with _LOCK:
        _UNLOCKED.clear()
