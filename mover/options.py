"""The options of a copy, checked once for every door: the CLI, ``mover.copy``, ``mover.submit``,
the ``mover.submit`` Celery task and the catalogue's operations all call :func:`copy_request`,
so that the same option names take the same values everywhere and a bad one gets the same
one-line error.

Names and values:

``streams``
    chunks in flight at once: an int from 1 to :data:`MAX_STREAMS` (or its digits as text).
``chunk_size``
    bytes per chunk: an int, or a size as text (``8MiB``, ``64M``, ``1.5G``: binary units, as
    in rclone; ``KB``/``MB``/``GB`` are decimal); 0, ``""`` or None for the strategy's choice.
``recursive``
    copy a folder or prefix: a bool.
``to_device``
    the destination is a block device, overwritten in place: a bool (embedded only).
``include`` / ``exclude``
    globs (one, or a list) selecting the objects of a recursive copy, as rclone's
    (:mod:`mover.filters`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from mover.config import parse_size
from mover.errors import MoverError, UsageError
from mover.filters import Filters
from mover.motion import Options

if TYPE_CHECKING:
    from mover.transfer import Request


class CopyOptions(TypedDict, total=False):
    """The options of a copy as keyword arguments (``mover.copy(..., **options)``, typed with
    ``Unpack``): declared once here for every door that takes them, checked by
    :func:`copy_request`."""

    chunk_size: int | str | None
    exclude: Any
    include: Any
    recursive: bool
    streams: int | str
    to_device: bool


#: The most streams one job may ask for.
MAX_STREAMS = 256
#: Every option name a copy accepts.
NAMES = tuple(sorted(CopyOptions.__annotations__))


def _bad(name: str, value: Any, problem: str) -> UsageError:
    return UsageError(f"option {name}: {problem} (got {value!r})")


def _streams(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad("streams", value, "a whole number of streams")
    if not 1 <= value <= MAX_STREAMS:
        raise _bad("streams", value, f"from 1 to {MAX_STREAMS}")
    return value


def chunk_size_bytes(value: Any) -> int | None:
    """A ``chunk_size`` option in bytes (None: the strategy's choice); UsageError otherwise."""
    if value in (None, "", 0):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _bad("chunk_size", value, "a size in bytes or text such as 8MiB")
    try:
        size = parse_size(value)
    except MoverError:
        raise _bad("chunk_size", value, "a size in bytes or text such as 8MiB") from None
    if size < 1:
        raise _bad("chunk_size", value, "at least 1 byte")
    return size


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(name, value, "true or false")
    return value


def copy_request(options: Mapping[str, Any]) -> tuple[Options, bool, Filters | None]:
    """Check ``options`` (names from :data:`NAMES`, any subset) and return the planning
    options, ``recursive`` and the filters (None without any). Raises UsageError, one line
    naming the option, for an unknown name or a bad value."""
    unknown = sorted(set(options) - set(NAMES))
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r} (known: {', '.join(NAMES)})")
    planned = Options(
        streams=_streams(options.get("streams", 4)),
        chunk_size=chunk_size_bytes(options.get("chunk_size")),
        to_device=_flag("to_device", options.get("to_device", False)),
    )
    filters = Filters.of(options.get("include") or (), options.get("exclude") or ()) or None
    return planned, _flag("recursive", options.get("recursive", False)), filters


def request_for(source: str, destination: str, options: Mapping[str, Any]) -> Request:
    """The copy request of ``source`` to ``destination`` with ``options`` checked by
    :func:`copy_request`: what the CLI, ``mover.copy`` and ``mover.submit`` hand their
    executor."""
    from mover.transfer import Request

    planned, recursive, filters = copy_request(options)
    return Request(source, destination, recursive, planned, filters)


def normalize(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with those of :data:`NAMES` it holds checked and in their canonical form
    (``chunk_size`` in bytes), the others as they are: for functions that take copy options
    among others (the catalogue's operations)."""
    mine = {k: v for k, v in options.items() if k in NAMES}
    planned, recursive, _filters = copy_request(mine)
    canonical = {
        "streams": planned.streams,
        "chunk_size": planned.chunk_size,
        "to_device": planned.to_device,
        "recursive": recursive,
    }
    return {**options, **{k: canonical.get(k, v) for k, v in mine.items()}}
