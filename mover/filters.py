"""``--include`` / ``--exclude`` glob filters, with rclone's semantics.

Rules are the include patterns in the order given, then the exclude patterns in the order
given, then, if any include was given, an implicit ``--exclude /**``. A path is tested against
them in that order and the first rule that matches decides; a path no rule matches is
included. (As in rclone, mixing the two is rarely what one wants: an include is tested before
every exclude.)

Patterns are matched against the path *relative to the transfer's root* (the source folder or
prefix), with ``/`` as separator:

- ``*`` matches any run of characters but ``/``; ``**`` matches any run including ``/``;
  ``?`` one character but ``/``; ``[abc]``, ``[a-z]``, ``[!a-z]`` a character class;
  ``{jpg,png}`` one of the alternatives; ``\\`` escapes the next character.
- A pattern that starts with ``/`` is anchored at the root (``/top.txt`` matches ``top.txt``
  only); otherwise it matches at the end of the path, whole components (``*.jpg`` matches
  ``a.jpg`` and ``dir/sub/a.jpg``; ``sub/*.jpg`` matches ``dir/sub/a.jpg``).
- A pattern that ends with ``/`` names folders; a folder's files match ``dir/**``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mover.errors import UsageError


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of one rclone glob (see the module docstring)."""
    if not pattern:
        raise UsageError("an empty filter pattern matches nothing: give a glob such as *.img")
    anchored = pattern.startswith("/")
    body = pattern[1:] if anchored else pattern
    if body.endswith("/"):
        body += "**"  # a folder: everything in it
    out = ["^" if anchored else "(^|/)"]
    i, braces = 0, 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            if i + 1 >= len(body):
                raise UsageError(f"filter {pattern!r} ends with a lone backslash")
            out.append(re.escape(body[i + 1]))
            i += 2
            continue
        if c == "*":
            if body.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = body.find("]", i + 2 if body.startswith("[!", i) else i + 1)
            if end < 0:
                raise UsageError(f"filter {pattern!r}: '[' without its ']'")
            inner = body[i + 1 : end]
            if inner.startswith("!"):
                inner = "^" + inner[1:]
            out.append("[" + inner.replace("\\", "\\\\") + "]")
            i = end + 1
            continue
        elif c == "{":
            braces += 1
            out.append("(")
        elif c == "}" and braces:
            braces -= 1
            out.append(")")
        elif c == "," and braces:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    if braces:
        raise UsageError(f"filter {pattern!r}: '{{' without its '}}'")
    out.append("$")
    try:
        return re.compile("".join(out))
    except re.error as exc:
        raise UsageError(f"filter {pattern!r} is not a valid glob: {exc}") from None


@dataclass(frozen=True)
class Filters:
    """Include and exclude globs; :meth:`allows` says whether a relative path is selected."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    _rules: tuple[tuple[bool, re.Pattern[str]], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        rules = [(True, glob_to_regex(p)) for p in self.include]
        rules += [(False, glob_to_regex(p)) for p in self.exclude]
        if self.include:
            rules.append((False, glob_to_regex("/**")))
        object.__setattr__(self, "_rules", tuple(rules))

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def allows(self, relative: str) -> bool:
        """True when ``relative`` (a path below the transfer's root) is selected."""
        path = relative.lstrip("/")
        for include, regex in self._rules:
            if regex.search(path):
                return include
        return True

    def to_dict(self) -> dict[str, Any]:
        """For job records (``job.options``): only what was given."""
        out: dict[str, Any] = {}
        if self.include:
            out["include"] = list(self.include)
        if self.exclude:
            out["exclude"] = list(self.exclude)
        return out

    @classmethod
    def of(cls, include: Any = (), exclude: Any = ()) -> Filters:
        """From a glob, a list of globs or None each (the API's and the CLI's forms)."""
        return cls(_globs(include), _globs(exclude))


def _globs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)
