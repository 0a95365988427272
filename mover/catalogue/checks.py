"""``mover stores check``: prove a store works, through mover's providers only.

Per store, in order, each step named in the report so the operator sees how far it got:

1. ``reach``: the store answers for its root and accepts the credentials (the provider's
   ``check_writable``: a bucket or container that exists, a folder that is writable);
2. ``write``: a small probe object is written (``put`` where the store has an atomic put,
   else a one-part chunk writer), the store confirming its checksum;
3. ``list``: the probe appears in a listing of its key;
4. ``read``: the probe reads back byte for byte;
5. ``delete``: the probe is deleted, and is gone.

Messages come from the providers, which name the store and key and never a credential.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from mover.catalogue.objectio import read_into, write_whole
from mover.catalogue.store import Catalogue
from mover.errors import MoverError, ObjectNotFound, VerificationFailed
from mover.resolve import open_location

PROBE_BYTES = 4096


def check_store(name: str, *, catalogue: Catalogue | None = None) -> dict[str, Any]:
    """Check one store; returns ``{"store", "url", "ok", "steps", "error", "seconds"}``."""
    cat = catalogue or Catalogue()
    record = cat.get_store(name)
    started = time.monotonic()
    steps: list[str] = []
    probe = f".mover-probe-{os.urandom(6).hex()}"
    data = os.urandom(PROBE_BYTES)
    store = key = None
    written = False
    try:
        store, location = open_location(f"store:{name}/{probe}")
        key = location.full_key
        store.check_writable(key, PROBE_BYTES)
        steps.append("reach")
        write_whole(store, key, data)
        written = True
        steps.append("write")
        if not any(info.key == key for info in store.list(key)):
            raise VerificationFailed(f"{store.describe()}: probe {key} missing from a listing")
        steps.append("list")
        back = bytearray(PROBE_BYTES)
        if read_into(store, key, memoryview(back)) != PROBE_BYTES or bytes(back) != data:
            raise VerificationFailed(f"{store.describe()}: probe {key} read back different")
        steps.append("read")
        store.delete(key)
        written = False
        if store.exists(key):
            raise VerificationFailed(f"{store.describe()}: probe {key} still there after delete")
        steps.append("delete")
        error = None
    except MoverError as exc:
        error = exc.message
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc.strerror or exc}"
    finally:
        if written and store is not None and key is not None:
            with contextlib.suppress(MoverError, ObjectNotFound, OSError):
                store.delete(key)
    return {
        "store": name,
        "url": record.url,
        "role": record.role,
        "scope": record.scope,
        "ok": error is None,
        "steps": steps,
        "error": error,
        "seconds": round(time.monotonic() - started, 3),
    }


def check_stores(
    names: list[str] | None = None, *, catalogue: Catalogue | None = None
) -> list[dict[str, Any]]:
    """Check the named stores, or every store; one report each, in name order."""
    cat = catalogue or Catalogue()
    names = names or [s.name for s in cat.stores()]
    return [check_store(n, catalogue=cat) for n in names]


def report_line(result: dict[str, Any]) -> str:
    """One line per store: ``ok`` or ``FAIL``, the name, the URL, what passed or what failed."""
    if result["ok"]:
        return (
            f"ok    {result['store']}  {result['url']}  reachable, authenticated, wrote, listed, "
            f"read and deleted a probe ({result['seconds']:.2f} s)"
        )
    passed = ", ".join(result["steps"]) or "nothing"
    return f"FAIL  {result['store']}  {result['url']}  passed: {passed}; failed: {result['error']}"
