"""The credential rules, once: a secret never sits in a configuration, a catalogue, a URL or a
task message; a store *names* where its credentials come from (``credentials_env``: an
environment prefix; ``credentials_file``: a file) and each process reads them itself.

The TOML configuration (:mod:`mover.config`), the catalogue (:mod:`mover.catalogue.store`) and
locations given on the command line all ask these functions, so that the same option is
refused everywhere with the same reason.
"""

from __future__ import annotations

import re
from typing import Any

from mover.errors import BadLocation, ConfigError

#: Words in an option's name that say it would hold a secret.
SECRET_WORDS = ("secret", "password", "token", "key")
#: Endings that make such a name a reference or a public identifier, not a secret.
REFERENCE_ENDINGS = ("_env", "_file", "key_id", "access_key_id")


def holds_secret(option: str) -> bool:
    """Whether an option named ``option`` would hold a secret (by its name alone: the value
    is never looked at, so never shown)."""
    low = option.lower()
    return any(w in low for w in SECRET_WORDS) and not low.endswith(REFERENCE_ENDINGS)


def refuse_secrets(options: dict[str, Any], where: str, fix: str) -> None:
    """Raise ConfigError naming the first option of ``options`` that would hold a secret;
    ``where`` says whose options they are, ``fix`` what to do instead."""
    for key in options:
        if holds_secret(key):
            raise ConfigError(f"{where}: option {key!r} would hold a secret; {fix}")


def check_not_url_with_secret(text: str) -> None:
    """Refuse a URL with a user and password in it (``scheme://user:pass@host``)."""
    if re.search(r"://[^/]*:[^/]*@", text):
        raise BadLocation("credentials do not belong in a URL")
