"""Where a repository keeps what, inside a store, and its configuration object.

A repository lives under ``repository/`` at the root of a store (beside ``templates/`` and
the ``snapshots/`` of manifest v1), and is reached only through the provider contract, so the
same layout serves files, S3 and Swift::

    repository/config                       plaintext JSON (RepoConfig): format, parameters
    repository/keys/<id>                    the master key, encrypted under a passphrase/key file
    repository/data/<id[:2]>/<id>           packs: encrypted blobs + encrypted header; id = blake3
                                            of the pack's bytes (check verifies it unkeyed)
    repository/index/<id>                   encrypted index files: pack -> blobs (a cache; the
                                            pack headers are the truth)
    repository/snapshots/<name>/<backup>    encrypted manifests, written last
    repository/templates/<name>/<backup>    encrypted template manifests
    repository/locks/<id>                   encrypted leases of running backups and prunes
    repository/trash/<id>                   encrypted prune marks: packs to delete later

Object names carry no content: chunk ids are keyed digests (see :mod:`.crypto`), pack ids are
digests of ciphertext. Snapshot and template names are visible, as they are in the catalogue.
docs/REPOSITORY.md describes the formats.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from mover.errors import UsageError, VerificationFailed
from mover.provider import MiB

#: The folder of a store that holds its repository.
PREFIX = "repository/"
CONFIG = "config"
KEYS = "keys/"
DATA = "data/"
INDEX = "index/"
LOCKS = "locks/"
TRASH = "trash/"
#: Manifest kinds and their folders.
KINDS = {"snapshot": "snapshots/", "template": "templates/"}

#: Bytes of a chunk id (keyed BLAKE3) and of a pack id (BLAKE3).
ID_BYTES = 32
_HEX_ID = re.compile(r"^[0-9a-f]{64}$")

#: The repository format this code writes and reads.
FORMAT = 1
#: Defaults, chosen by measurement (docs/REPOSITORY.md, benchmarks/bench_repo_params.py).
DEFAULT_CHUNK_BYTES = 1 * MiB
DEFAULT_PACK_BYTES = 16 * MiB
DEFAULT_COMPRESSION = "zstd:1"
ENCRYPTION = ("aes-256-gcm", "none")


def is_id(name: str) -> bool:
    """A 64-hex-digit object name (a pack, index, key or lock written by mover)."""
    return bool(_HEX_ID.match(name))


def new_id() -> str:
    """A random object name for index files, locks and trash lists."""
    return uuid.uuid4().hex + uuid.uuid4().hex


def pack_key(pack_id: str) -> str:
    return f"{DATA}{pack_id[:2]}/{pack_id}"


def manifest_folder(kind: str, name: str) -> str:
    try:
        return f"{KINDS[kind]}{name}/"
    except KeyError:
        raise UsageError(f"unknown manifest kind {kind!r} (known: {', '.join(KINDS)})") from None


def manifest_key(kind: str, name: str, backup: str) -> str:
    return f"{manifest_folder(kind, name)}{backup}"


def parse_compression(text: str) -> tuple[str, int]:
    """``zstd:LEVEL`` or ``none`` -> (algorithm, level)."""
    algo, _, level = str(text).partition(":")
    if algo == "none" and not level:
        return "none", 0
    if algo == "zstd":
        try:
            n = int(level or 1)
        except ValueError:
            n = -100
        if 1 <= n <= 19:
            return "zstd", n
    raise UsageError(f"compression {text!r}: write zstd:LEVEL (1-19) or none")


@dataclass(frozen=True)
class RepoConfig:
    """``repository/config``: what every reader must know before reading anything else.

    Attributes:
        id: the repository's random id (caches of unlocked keys and index files use it).
        encryption: ``aes-256-gcm`` or ``none`` (only when asked for explicitly).
        compression: ``zstd:LEVEL`` or ``none``, applied per chunk where it makes it smaller.
        chunk_size: bytes per chunk of a new backup (fixed-size chunks aligned to the volume).
        pack_bytes: a pack is written once it holds this many bytes.
        id_key: hex of the chunk-id key, only for an unencrypted repository (an encrypted one
            keeps it inside the master key).
    """

    id: str
    encryption: str = "aes-256-gcm"
    compression: str = DEFAULT_COMPRESSION
    chunk_size: int = DEFAULT_CHUNK_BYTES
    pack_bytes: int = DEFAULT_PACK_BYTES
    created: float = field(default_factory=time.time)
    id_key: str | None = None
    version: int = FORMAT
    #: Proof of which master key this configuration belongs to (:func:`key_check`): a first
    #: backup killed between writing its key and its config leaves a key of a repository that
    #: never was, which the same passphrase opens too. None in repositories made before it.
    key_check: str | None = None

    def __post_init__(self) -> None:
        if self.encryption not in ENCRYPTION:
            raise UsageError(f"encryption {self.encryption!r}: one of {', '.join(ENCRYPTION)}")
        parse_compression(self.compression)
        if not MiB // 16 <= self.chunk_size <= 64 * MiB:
            raise UsageError(f"chunk size {self.chunk_size}: between 64 KiB and 64 MiB")
        if not self.chunk_size <= self.pack_bytes <= 1024 * MiB:
            raise UsageError(f"pack size {self.pack_bytes}: between the chunk size and 1 GiB")

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> RepoConfig:
        try:
            raw: dict[str, Any] = json.loads(data)
            if raw.get("version") != FORMAT:
                raise UsageError(
                    f"{where}: repository format {raw.get('version')} is not one this mover "
                    f"reads ({FORMAT}); upgrade mover"
                )
            return cls(**raw)
        except (ValueError, TypeError) as exc:
            raise VerificationFailed(f"{where}: not a repository configuration ({exc})") from exc


def key_check(repo_id: str, ids_key: bytes) -> str:
    """What :attr:`RepoConfig.key_check` holds for a master key whose chunk-id key is
    ``ids_key``: a keyed hash of the repository id, which tells nothing of the key."""
    return hmac.new(ids_key, b"mover-key-check\0" + repo_id.encode(), hashlib.sha256).hexdigest()[
        :32
    ]
