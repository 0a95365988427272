"""Job stores: SQLite for the embedded default; Redis for the fleet."""

from __future__ import annotations

from collections.abc import Iterable

#: The fields ``JobStore.update_job`` may change (``updated`` is set by the store).
JOB_FIELDS = ("state", "error", "finished", "owner")
#: The fields ``JobStore.update_item`` may change.
ITEM_FIELDS = ("state", "digest", "error", "bytes_through", "strategy", "size")


def check_fields(fields: Iterable[str], allowed: tuple[str, ...], what: str) -> None:
    """Refuse an update of a field the stores do not change that way (a caller's bug)."""
    bad = set(fields) - set(allowed)
    if bad:
        raise ValueError(f"unknown {what} fields {bad}")
