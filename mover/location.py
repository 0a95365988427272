"""Locations: where an object lives, parsed once and validated in the caller.

A location is written as a URL (``s3://bucket/key``, ``swift://container/obj``,
``file:///srv/x.qcow2``, ``https://host/x.qcow2``), a plain path (the ``file`` scheme), ``-``
(standard input or output, the ``stdio`` scheme) or a configured store
(``store:backup-east/templates/x.qcow2``). Parsing here is generic and knows no protocol: the
scheme picks the provider, and the provider checks what its own URLs must hold.

Keys are always relative to a *root*: the prefix of a configured store, or nothing. A key that
normalises to somewhere outside its root (``..``) is refused here; a provider that can follow
links (the file store) checks the resolved path as well.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote, urlsplit

from mover.errors import BadLocation, KeyEscapesRoot

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
#: The scheme a plain path gets, and the one ``-`` gets.
FILE_SCHEME = "file"
STDIO_SCHEME = "stdio"
STORE_PREFIX = "store:"


@dataclass(frozen=True)
class Location:
    """One object (or, with a trailing ``/``, a prefix) in one store.

    Attributes:
        scheme: picks the provider (``s3``, ``file``, ...).
        store: the bucket, container or host (``""`` for files and stdio).
        key: the object's key relative to ``root``; ``""`` names the root itself.
        root: a prefix the key may never leave (a configured store's folder or prefix).
        name: the configured store's name when written as ``store:NAME/...``.
        endpoint: the provider-specific endpoint part of a URL (``host:port`` for http).
    """

    scheme: str
    store: str
    key: str
    root: str = ""
    name: str | None = None
    endpoint: str = ""

    @property
    def full_key(self) -> str:
        """The key as the store sees it: root and key joined."""
        if not self.root:
            return self.key
        if not self.key:
            return self.root
        return f"{self.root.rstrip('/')}/{self.key}"

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    @property
    def basename(self) -> str:
        return posixpath.basename(self.key.rstrip("/"))

    def child(self, relative: str) -> Location:
        """The location of ``relative`` below this prefix, refusing any escape."""
        base = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return replace(self, key=safe_key(base + relative, self))

    @property
    def url(self) -> str:
        """A URL that parses back to this location; never holds user information. A signed
        URL's query is kept (requests need it): record or show :attr:`shown` instead."""
        if self.name is not None:
            return f"{STORE_PREFIX}{self.name}/{self.key}"
        if self.scheme == STDIO_SCHEME:
            return "-"
        host = self.endpoint or self.store
        path = quote(self.full_key, safe="/~:@!$&'()*+,;=-._")
        return f"{self.scheme}://{host}/{path}"

    @property
    def shown(self) -> str:
        """The URL for records, messages and logs: credentials in the query redacted
        (:mod:`mover.redact`)."""
        from mover.redact import redact

        return redact(self.url)

    def __str__(self) -> str:
        return self.shown


def safe_key(key: str, where: Location | None = None, root: str = "") -> str:
    """Normalise a key and refuse one that escapes its root.

    ``a/./b`` becomes ``a/b``; ``a/../b`` becomes ``b``; ``../x`` or anything that climbs above
    the root raises :class:`KeyEscapesRoot`. A trailing ``/`` (a prefix) is kept.
    """
    if "\x00" in key:
        raise BadLocation(f"key {key!r} holds a NUL byte")
    trailing = key.endswith("/")
    parts: list[str] = []
    for part in key.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                label = where.shown if where is not None else (root or "/")
                raise KeyEscapesRoot(f"key {key!r} escapes the root of {label}")
            parts.pop()
            continue
        parts.append(part)
    out = "/".join(parts)
    return out + "/" if trailing and out else out


def parse(text: str) -> Location:
    """Parse a location from a URL, a plain path, ``-`` or ``store:NAME/key``.

    Raises :class:`BadLocation` for a malformed one. A configured store is *not* resolved here
    (see :func:`mover.config.resolve`): only its name and key are split.
    """
    if not isinstance(text, str) or not text.strip():
        raise BadLocation("empty location: give a URL (s3://bucket/key), a path, or -")
    if text != text.strip():
        raise BadLocation(f"location {text!r} has leading or trailing white space")
    if text == "-":
        return Location(STDIO_SCHEME, "", "-")
    if text.startswith(STORE_PREFIX) and not text.startswith(STORE_PREFIX + "//"):
        rest = text[len(STORE_PREFIX) :]
        name, _, key = rest.partition("/")
        if not name:
            raise BadLocation(f"{text!r}: write a configured store as store:NAME/key")
        return Location("", "", safe_key(key), name=name)
    if "://" not in text:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", text):
            raise BadLocation(f"malformed URL {text!r}: expected SCHEME://STORE/KEY")
        return _file_location(text)
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    if not _SCHEME.match(scheme):
        raise BadLocation(f"malformed URL {text!r}: {scheme!r} is not a URL scheme")
    if scheme == FILE_SCHEME:
        if not rest.startswith("/"):
            raise BadLocation(
                f"malformed file URL {text!r}: write file:///absolute/path (three slashes)"
            )
        return _file_location(unquote(rest))
    try:
        parts = urlsplit(text)
        netloc = parts.netloc
        parts.port  # noqa: B018  (validates the port)
    except ValueError as exc:
        raise BadLocation(f"malformed URL {text!r}: {exc}") from exc
    if "@" in netloc:
        raise BadLocation(
            f"malformed URL {_redact(text)!r}: credentials do not belong in a URL; "
            "configure them for the store instead"
        )
    # An empty store (scheme:///path) is the provider's to accept or refuse
    # (StoreProvider.needs_store): path-like stores of plugins use it as the file store does.
    path = unquote(parts.path.lstrip("/"))
    key = safe_key(path) if path else ""
    if parts.query:
        # The query is kept as written, never normalised (``..`` or ``//`` in a query mean
        # nothing to the path): the provider decides what it is (an HTTP query, a "?" in an
        # object key).
        key = f"{key}?{parts.query}"
    return Location(scheme, netloc, key, endpoint=netloc)


def _file_location(path: str) -> Location:
    if "\x00" in path:
        raise BadLocation(f"path {path!r} holds a NUL byte")
    trailing = path.endswith("/") or path.endswith(os.sep)
    absolute = os.path.abspath(os.path.expanduser(path))
    key = absolute.lstrip("/")
    if trailing and key:
        key += "/"
    return Location(FILE_SCHEME, "", key)


def _redact(text: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", text)
