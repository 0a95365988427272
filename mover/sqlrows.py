"""Records as SQL rows and back, and one SQLite transaction: the plumbing the SQLite job store
(:mod:`mover.jobstores.sqlite`) and the catalogue (:mod:`mover.catalogue.store`,
:mod:`mover.catalogue.backends`) share.

Why: each table used to be spelled out three times (the INSERT's values, the SELECT's columns,
the record built from a row by position), and the copies drifted apart one column at a time. A
table is now named once, as the record fields its columns hold in the table's order; that one
tuple gives the INSERT its values, the SELECT its columns and the record its keywords. A
column whose text is JSON (or an integer standing for a bool) names its codec.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

#: Column name -> how its value is turned into what the column holds, or back.
Codec = Mapping[str, Callable[[Any], Any]]


def columns(text: str) -> tuple[str, ...]:
    """Column names written as a SELECT lists them: ``"id, name, created"``."""
    return tuple(name.strip() for name in text.split(","))


def values(record: Any, columns: Sequence[str], encode: Codec | None = None) -> tuple[Any, ...]:
    """The row of ``record``: its fields named by ``columns``, in order, each through its
    ``encode`` entry when it has one."""
    encode = encode or {}
    out = []
    for column in columns:
        value = getattr(record, column)
        out.append(encode[column](value) if column in encode else value)
    return tuple(out)


def fields(
    columns: Sequence[str], row: Sequence[Any], decode: Codec | None = None
) -> dict[str, Any]:
    """``row`` as the keywords of its record: ``columns`` name its values (as many as there are
    values), each through its ``decode`` entry when it has one."""
    decode = decode or {}
    return {
        column: decode[column](value) if column in decode else value
        for column, value in zip(columns, row, strict=True)
    }


def json_or_none(text: str | None) -> Any:
    """A JSON column that may be empty (NULL or ''): None then."""
    return json.loads(text) if text else None


@contextmanager
def transaction(db: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """One transaction on a connection opened with ``isolation_level=None`` (as every mover
    SQLite file is): committed at the end, rolled back on any exception (KeyboardInterrupt
    too), which is then raised. ``BEGIN IMMEDIATE`` takes the write lock at once, so a writer
    waits for it (``timeout``) instead of failing when it upgrades a read lock."""
    db.execute(begin)
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
