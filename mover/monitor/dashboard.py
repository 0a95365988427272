"""``mover dashboard``: a read-only web page of the fleet, updated live.

The page (``static/dashboard.html``, ``.js``, ``.css``, shipped as package data) polls
``/api/fleet`` every second: the latest look at the fleet (:class:`~mover.monitor.view.
FleetReader`) and a short history of each queue's depth and oldest age and each store's
throughput (10 minutes at 5-second steps, kept in this process: a restart starts an empty
graph, never a wrong one). One sampler thread looks at the fleet; every browser gets its last
look, so ten open tabs cost Redis what one does.

Read-only: no route changes anything, and the page links to Flower for task detail. What it
shows holds no secret (store keys, ids, URLs without their query strings).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import deque
from importlib import resources
from typing import Any

from mover.monitor.view import FleetReader, FleetState, display_url
from mover.monitor.web import Reply, Route

#: Files served under /static/ (a fixed list: no path from a request reaches the disk).
STATIC = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


class Dashboard:
    """The sampler and the routes of the page.

    Parameters:
        reader: how to look at the fleet.
        refresh_s: seconds between two looks (and two polls of the page).
        history_s, step_s: how much history the graphs keep, and at what resolution.
        flower_url: where the Flower link points (user info and query removed).
    """

    def __init__(
        self,
        reader: FleetReader,
        *,
        refresh_s: float = 1.0,
        history_s: float = 600.0,
        step_s: float = 5.0,
        flower_url: str | None = None,
    ) -> None:
        self.reader = reader
        self.refresh_s = refresh_s
        self.step_s = step_s
        self.flower_url = display_url(flower_url) if flower_url else None
        self.history: deque[dict[str, Any]] = deque(maxlen=max(2, int(history_s / step_s)))
        self.latest: FleetState | None = None
        self._last_step = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> FleetState:
        """Look once; keep the look, and a history point every ``step_s``."""
        state = self.reader.read()
        with self._lock:
            self.latest = state
            if state.up and state.time_s - self._last_step >= self.step_s:
                self._last_step = state.time_s
                self.history.append(
                    {
                        "t": round(state.time_s, 1),
                        "queues": {
                            q.name: [q.depth, q.oldest_age_s]
                            for q in state.queues
                            if q.depth or q.unacked or q.consumers
                        },
                        "stores": {
                            s.key: [round(s.in_rate), round(s.out_rate)] for s in state.stores
                        },
                    }
                )
        return state

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.sample()
            except Exception:  # never let the sampler die: the page would freeze
                import logging

                logging.getLogger("mover.monitor").exception("dashboard sample failed")
            self._stop.wait(max(0.1, self.refresh_s - (time.monotonic() - started)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mover-dashboard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    # -- routes -----------------------------------------------------------------------------

    def fleet_json(self) -> dict[str, Any]:
        with self._lock:
            state = self.latest
            history = list(self.history)
        body: dict[str, Any] = {
            "refresh_s": self.refresh_s,
            "flower_url": self.flower_url,
            "history": history,
        }
        if state is None:
            body["state"] = None
        else:
            body["state"] = dataclasses.asdict(state)
        return body

    def _api(self, _path: str) -> Reply:
        body = json.dumps(self.fleet_json(), allow_nan=False, default=str).encode()
        return Reply(body, "application/json")

    @staticmethod
    def _file(name: str) -> bytes:
        return (resources.files("mover.monitor") / "static" / name).read_bytes()

    def _page(self, _path: str) -> Reply:
        return Reply(self._file("dashboard.html"), "text/html; charset=utf-8")

    def _static(self, path: str) -> Reply:
        name = path.removeprefix("/static/")
        if name not in STATIC:
            return Reply(b"not found\n", status=404)
        return Reply(self._file(name), STATIC[name])

    def routes(self) -> dict[str, Route]:
        return {"/": self._page, "/api/fleet": self._api, "/static/": self._static}
