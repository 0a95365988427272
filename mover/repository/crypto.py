"""Encryption and chunk ids: AES-256-GCM per object, keyed BLAKE3 ids, a wrapped master key.

Choices, measured on this machine (benchmarks/bench_repo_params.py, one core, 1 MiB buffers):

- **Chunk id = keyed BLAKE3** of the chunk's plaintext (about 7,100 MiB/s against 1,700 for
  HMAC-SHA256). The key comes from the repository's master key (as borg does), so under
  encryption an id says nothing about the content: no one without the key can confirm that a
  repository holds a known block. Dedup keeps working because equal plaintext gives equal ids
  within one repository (and across repositories that share a master key: ``repo init --like``).
- **AES-256-GCM** from ``cryptography`` (about 10,300 MiB/s with AES-NI, against 3,400 for
  ChaCha20-Poly1305), a random 96-bit nonce per object. Every blob is sealed with its chunk id
  as associated data, so a blob moved to another id, or a manifest to another name, fails its
  tag. Random nonces are safe for 2^32 objects per key: 4 PiB of 1 MiB chunks.
- **The master key** (64 random bytes: 32 for AES, 32 for ids) is stored under ``keys/``,
  sealed by a key derived with **Argon2id** (RFC 9106's second recommendation: t=3, 64 MiB,
  p=4; about 0.6 s here, paid once per process) from a passphrase or a key file that the
  store's configuration *names* (``repository_key_env``, ``repository_key_file``). The secret
  never reaches the catalogue, Redis, a task message or a log.

Unencrypted repositories exist only when asked for (``repository_encryption = "none"``): their
blobs are compressed but not sealed, and the id key sits in the plaintext configuration, so
ids still verify the data but protect nothing.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any

from mover.errors import VerificationFailed
from mover.repository.deps import require

NONCE_BYTES = 12
TAG_BYTES = 16
#: Argon2id parameters of new keys (stored in each key object, so they may change later).
KDF_PARAMS = {"time_cost": 3, "memory_cost": 65536, "parallelism": 4}
_KEY_AAD = b"mover-repository-master-key"


class BadKey(VerificationFailed):
    """A wrong passphrase or key file: the master key's tag does not verify."""


class Corrupt(VerificationFailed):
    """A sealed object whose tag does not verify: changed, truncated or misplaced."""


class Sealer:
    """Seals and opens objects; the base class is the ``none`` mode (plaintext)."""

    overhead = 0
    encrypted = False

    def seal(self, plaintext: bytes | memoryview, aad: bytes) -> bytes:
        return bytes(plaintext)

    def open(self, data: bytes | memoryview, aad: bytes) -> bytes:
        return bytes(data)


class AesGcmSealer(Sealer):
    """AES-256-GCM: ``nonce || ciphertext || tag``."""

    overhead = NONCE_BYTES + TAG_BYTES
    encrypted = True

    def __init__(self, key: bytes) -> None:
        aead = require("cryptography.hazmat.primitives.ciphers.aead")
        self._aead = aead.AESGCM(key)
        self._invalid = require("cryptography.exceptions").InvalidTag

    def seal(self, plaintext: bytes | memoryview, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, data: bytes | memoryview, aad: bytes) -> bytes:
        view = memoryview(data)
        if len(view) < self.overhead:
            raise Corrupt("sealed object too short")
        try:
            return bytes(self._aead.decrypt(view[:NONCE_BYTES], view[NONCE_BYTES:], aad))
        except self._invalid:
            raise Corrupt("authentication tag does not verify") from None


@dataclass(frozen=True)
class MasterKey:
    """The repository's secrets: ``data`` seals objects, ``ids`` keys chunk ids."""

    data: bytes
    ids: bytes

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(32), os.urandom(32))

    def sealer(self) -> Sealer:
        return AesGcmSealer(self.data)


class ChunkIds:
    """Keyed BLAKE3 of chunk plaintext: the name of a chunk in one repository."""

    def __init__(self, key: bytes) -> None:
        self._blake3 = require("blake3").blake3
        self._key = key

    def __call__(self, data: bytes | memoryview) -> bytes:
        return bytes(self._blake3(data, key=self._key).digest())


def derive(secret: bytes, salt: bytes, params: dict[str, int]) -> bytes:
    """The key-encryption key of a passphrase or key file (Argon2id)."""
    low = require("argon2.low_level")
    return bytes(
        low.hash_secret_raw(
            secret,
            salt,
            time_cost=int(params["time_cost"]),
            memory_cost=int(params["memory_cost"]),
            parallelism=int(params["parallelism"]),
            hash_len=32,
            type=low.Type.ID,
        )
    )


def wrap(master: MasterKey, secret: bytes) -> bytes:
    """A key object (JSON): the master key sealed under a key derived from ``secret``."""
    salt = os.urandom(16)
    kek = derive(secret, salt, KDF_PARAMS)
    body = json.dumps({"data": _b64(master.data), "ids": _b64(master.ids)}).encode()
    sealed = AesGcmSealer(kek).seal(body, _KEY_AAD)
    return json.dumps(
        {"kdf": "argon2id", **KDF_PARAMS, "salt": _b64(salt), "sealed": _b64(sealed)}, indent=1
    ).encode()


def unwrap(key_object: bytes, secret: bytes) -> MasterKey:
    """The master key of a key object; :class:`BadKey` if ``secret`` does not open it."""
    try:
        raw: dict[str, Any] = json.loads(key_object)
        if raw.get("kdf") != "argon2id":
            raise BadKey(f"unknown key derivation {raw.get('kdf')!r}")
        kek = derive(secret, _unb64(raw["salt"]), raw)
        sealed = _unb64(raw["sealed"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadKey(f"not a key object ({exc})") from exc
    try:
        body = json.loads(AesGcmSealer(kek).open(sealed, _KEY_AAD))
    except Corrupt:
        raise BadKey("wrong passphrase or key file") from None
    return MasterKey(_unb64(body["data"]), _unb64(body["ids"]))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
