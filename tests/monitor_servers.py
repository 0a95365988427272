"""A real Prometheus for the monitoring tests (Debian's ``prometheus`` package, 2.42 here).

Same life cycle as the servers of :mod:`tests.servers` (temporary directory, free port, stop by
PID, nothing left behind): it subclasses their base. The configuration scrapes the given
targets every second and loads the given rule files, so a test sees a scrape within a couple
of seconds and an alert with a short ``for:`` fire within a few more.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Unpack

from tests.servers import ServerOptions, _http_status, _Server, find_binary, free_port

PROMETHEUS_HINT = "apt-get install prometheus (Debian package; .ci/install-servers.sh does it)"


class PrometheusServer(_Server):
    """Prometheus on a free loopback port, scraping ``targets`` (``host:port``) every second.

    Args:
        targets: what to scrape (``/metrics`` of each).
        rule_files: rule files copied next to the configuration and loaded.
        **kwargs: see :class:`tests.servers._Server`.

    Attributes:
        url: ``http://127.0.0.1:PORT``.
    """

    kind = "prometheus"
    default_stop_grace_s = 5.0

    def __init__(
        self,
        targets: Sequence[str],
        rule_files: Sequence[Path] = (),
        **kwargs: Unpack[ServerOptions],
    ) -> None:
        super().__init__(**kwargs)
        self.binary = find_binary("prometheus", PROMETHEUS_HINT)
        self.targets = list(targets)
        self.rule_files = [Path(p) for p in rule_files]
        self.port = 0
        self.url = ""

    def _prepare(self, base_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules = []
        for path in self.rule_files:
            shutil.copy(path, base_dir / path.name)
            rules.append(path.name)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": rules,
            "scrape_configs": [
                {
                    "job_name": "mover",
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }
        # JSON is YAML: no YAML writer needed.
        (base_dir / "prometheus.yml").write_text(json.dumps(config, indent=1))

    def _launch(self) -> None:
        assert self.base_dir is not None
        argv = [
            self.binary,
            f"--config.file={self.base_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.base_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]
        self._spawn("prometheus", argv)

    def _probe(self) -> bool:
        return _http_status(f"{self.url}/-/ready")[0] == 200

    # -- the HTTP API ---------------------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; the ``data`` of a successful answer (else AssertionError)."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as reply:
            body = json.load(reply)
        assert body.get("status") == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector: ``[{"metric": {...}, "value": [t, "v"]}]``."""
        return self.api("query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        """The value of an expression that yields one series, or None when it yields none."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr} yields {len(result)} series"
        return float(result[0]["value"][1]) if result else None
