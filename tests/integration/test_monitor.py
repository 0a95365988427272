"""Seeing the fleet, on real parts: a private Redis with a password, two real workers logging
JSON, ``mover metrics`` scraped every second by a real Prometheus (Debian's), ``mover
dashboard`` opened in a real Chromium (Debian's, driven by Playwright), and the alert rules and
Grafana dashboard shipped in deploy/.

Secrets are planted everywhere a careless monitor could leak them (the broker's password in
its URL, store credentials in the environment of every process, the dashboard's password), and
the last test looks for them in every metric, page, Prometheus label and log line.

Screenshots for the README: ``MOVER_SCREENSHOTS=docs pytest tests/integration/test_monitor.py``
writes them to docs/ (else to the test's temporary folder).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mover.autoscale import DEFAULT_STRATEGY
from tests.fixtures_servers import _create, _missing
from tests.integration.test_fleet import (  # noqa: F401  (slow_http is a fixture)
    MOVER,
    ROOT,
    Fleet,
    Worker,
    random_file,
    sha256,
    slow_http,
    wait_final,
    wait_for,
)
from tests.monitor_servers import PrometheusServer
from tests.servers import BinaryNotFound, RedisServer, find_binary, free_port

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.celery]

MiB = 1 << 20
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "mover-rules.yml"
GRAFANA = DEPLOY / "grafana" / "mover-dashboard.json"
CHROMIUM = "/usr/bin/chromium"
#: Secrets a monitor must never show: they are looked for in everything at the end.
PLANTED = {
    "broker password": "planted-broker-pw-7f3a9c",
    "store secret key": "planted-aws-secret-5d1e8b",
    "vault store key": "planted-vault-secret-9c2b4f",
    "dashboard password": "planted-dash-pw-3e8d1a",
}
DASHBOARD_AUTH = f"ops:{PLANTED['dashboard password']}"


@dataclass
class Monitored:
    """The fleet and what watches it."""

    fleet: Fleet
    metrics_url: str
    dashboard_url: str
    prometheus: PrometheusServer
    vault: Path
    services: list[Worker] = field(default_factory=list)
    jobs_seen: list[str] = field(default_factory=list)

    def get(self, url: str, auth: str | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(url)
        if auth is not None:
            token = base64.b64encode(auth.encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def _tool(name: str) -> str:
    try:
        return find_binary(name, "apt-get install prometheus (.ci/install-servers.sh)")
    except BinaryNotFound as exc:
        _missing(exc)


def _start_cli(fleet: Fleet, name: str, *args: str) -> Worker:
    """A long-running ``mover`` command of the fleet, stopped like a worker."""
    log = fleet.folder / f"{name}.log"
    proc = subprocess.Popen(
        [*MOVER, *args],
        env=fleet.env,
        stdout=open(log, "wb"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=ROOT,
    )
    return Worker(name, proc, log)


def _wait_http(monitored: Monitored, url: str, service: Worker) -> None:
    def answers() -> bool:
        assert service.proc.poll() is None, f"{service.name} died:\n{service.text()}"
        try:
            return monitored.get(url, DASHBOARD_AUTH)[0] == 200
        except OSError:
            return False

    wait_for(answers, 30, f"{service.name} to answer")


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    """Two workers (prefork, -c 2, JSON logs) on a private Redis that wants a password; a
    configured store ``vault`` capped at 3 streams; ``mover metrics`` and ``mover dashboard``;
    a Prometheus scraping the metrics every second with the shipped rules (``for: 1s``)."""
    _tool("prometheus")
    redis = _create(RedisServer)
    redis.start()
    password = PLANTED["broker password"]
    import redis as redis_py

    redis_py.Redis.from_url(redis.url).config_set("requirepass", password)
    redis.url = f"redis://:{password}@127.0.0.1:{redis.port}/0"
    folder = tmp_path_factory.mktemp("monitor")
    vault = folder / "vault"
    vault.mkdir()
    (folder / "config.toml").write_text(
        f'[stores.vault]\nurl = "file://{vault}/"\nmax_streams = 3\ncredentials_env = "VAULT"\n'
    )
    env = dict(os.environ)
    env.update(
        MOVER_BROKER_URL=redis.url,
        MOVER_STATE_DIR=str(folder / "state"),
        MOVER_CONFIG=str(folder / "config.toml"),
        MOVER_VISIBILITY_TIMEOUT_S="10",
        MOVER_RESTORE_INTERVAL_S="2",
        MOVER_CHUNK_RETRIES="3",
        MOVER_LOG_FORMAT="json",
        MOVER_DASHBOARD_AUTH=DASHBOARD_AUTH,
        AWS_ACCESS_KEY_ID="planted-access-key-id",
        AWS_SECRET_ACCESS_KEY=PLANTED["store secret key"],
        VAULT_SECRET_ACCESS_KEY=PLANTED["vault store key"],
        PYTHONPATH=str(ROOT),
    )
    fleet = Fleet(redis, env, folder)
    services: list[Worker] = []
    prometheus = None
    try:
        a, b = fleet.start_worker("w1"), fleet.start_worker("w2")
        metrics_port, dashboard_port = free_port(), free_port()
        services.append(_start_cli(fleet, "metrics", "metrics", "--port", str(metrics_port)))
        services.append(
            _start_cli(
                fleet, "dashboard", "dashboard", "--port", str(dashboard_port), "--refresh", "0.5"
            )
        )
        rules = folder / "mover-rules.yml"
        rules.write_text(re.sub(r"\bfor: \w+", "for: 1s", RULES.read_text()))
        prometheus = PrometheusServer([f"127.0.0.1:{metrics_port}"], [rules])
        prometheus.start()
        monitored = Monitored(
            fleet,
            f"http://127.0.0.1:{metrics_port}",
            f"http://127.0.0.1:{dashboard_port}",
            prometheus,
            vault,
            services,
        )
        fleet.wait_ready(a, b)
        _wait_http(monitored, f"{monitored.metrics_url}/metrics", services[0])
        _wait_http(monitored, f"{monitored.dashboard_url}/api/fleet", services[1])
        yield monitored
    finally:
        if prometheus is not None:
            prometheus.stop()
        for process in [*services, *fleet.workers]:
            fleet.stop(process)
        redis.stop()


def submit(monitored: Monitored, source: str, destination: str, chunk: str) -> str:
    out = monitored.fleet.mover(
        "copy", source, destination, "--chunk-size", chunk, "--executor", "celery", "--detach"
    )
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    monitored.jobs_seen.append(job_id)
    return job_id


def families(text: str) -> set[str]:
    """Sample names of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


#: Every sample name `mover metrics` exposes once the fleet has run a job through a capped
#: store, met errors and retries, and the autoscaler has decided (collector.py's table).
EXPECTED = {
    "mover_up",
    "mover_scrape_duration_seconds",
    "mover_queue_messages",
    "mover_queue_band_messages",
    "mover_queue_unacked_messages",
    "mover_queue_consumers",
    "mover_queue_oldest_message_age_seconds",
    "mover_job_state",
    "mover_job_objects",
    "mover_job_objects_done",
    "mover_job_objects_failed",
    "mover_job_chunks",
    "mover_job_chunks_done",
    "mover_job_size_bytes",
    "mover_job_done_bytes",
    "mover_job_rate_bytes_per_second",
    "mover_job_eta_seconds",
    "mover_job_created_timestamp_seconds",
    "mover_job_last_progress_timestamp_seconds",
    "mover_store_bytes_total",
    "mover_store_throughput_bytes_per_second",
    "mover_store_chunks_total",
    "mover_store_errors_total",
    "mover_store_retries_total",
    "mover_store_streams",
    "mover_store_streams_limit",
    "mover_store_streams_high_water",
    "mover_worker_pool_processes",
    "mover_worker_busy_slots",
    "mover_workers_inspect_age_seconds",
    "mover_autoscale_desired_slots",
    "mover_autoscale_decision",
    "mover_autoscale_decision_info",
    "mover_autoscale_last_decision_timestamp_seconds",
    *(f"mover_chunk_duration_seconds{s}" for s in ("_bucket", "_sum", "_count")),
    *(f"mover_chunk_queue_wait_seconds{s}" for s in ("_bucket", "_sum", "_count")),
}


# -- tests ----------------------------------------------------------------------------------


def test_prometheus_sees_every_family_during_a_fleet_job(monitored: Monitored, slow_http: Any):  # noqa: F811
    """A 48 MiB job in 2 MiB chunks from a slow HTTP source into the capped store ``vault``,
    while the autoscaler decides once: Prometheus has every family, saw the job move, and its
    last values equal the job record (and the bytes on disk)."""
    fleet, prom = monitored.fleet, monitored.prometheus
    slow_http.rate = 1 * MiB  # 2 s a chunk: about 16 s for the job on 3 streams
    started = time.time()
    job_id = submit(monitored, f"{slow_http.url}/slow.bin", "store:vault/slow.bin", "2MiB")
    sel = f'job_id="{job_id}"'
    wait_for(
        lambda: (
            (prom.value(f'mover_job_state{{{sel},state="running"}}') == 1)
            and (prom.value(f"mover_job_done_bytes{{{sel}}}") or 0) > 0
        ),
        60,
        "Prometheus to see the job running and moving",
        poll_s=0.5,
    )
    scaled = fleet.mover(
        "autoscale", "--once", "--interval", "1", "--min-per-worker", "2", "--max-per-worker", "2"
    )
    assert scaled.returncode == 0, scaled.stderr
    jobs = fleet.jobs()
    job = wait_final(jobs, job_id, 120)
    assert job.state == "done", job.error
    assert sha256(monitored.vault / "slow.bin") == sha256(Path(slow_http.root) / "slow.bin")
    wait_for(
        lambda: (
            prom.value(f'mover_job_state{{{sel},state="done"}}') == 1
            and prom.value("mover_autoscale_last_decision_timestamp_seconds") is not None
        ),
        30,
        "Prometheus to scrape the finished job and the decision",
        poll_s=0.5,
    )
    # Every family had a series during the job (the ETA only while the job moved).
    names = set(
        prom.api(
            "label/__name__/values", start=str(started), **{"match[]": '{__name__=~"mover_.+"}'}
        )
    )
    assert names >= EXPECTED, f"missing in Prometheus: {sorted(EXPECTED - names)}"

    # The job, against its record (and the file's real size on disk).
    size = (monitored.vault / "slow.bin").stat().st_size
    item = job.items[0]
    assert prom.value(f"mover_job_size_bytes{{{sel}}}") == job.size == size == 48 * MiB
    assert prom.value(f"mover_job_done_bytes{{{sel}}}") == job.bytes_done == size
    assert prom.value(f"mover_job_objects{{{sel}}}") == len(job.items) == 1
    assert prom.value(f"mover_job_objects_done{{{sel}}}") == 1
    assert prom.value(f"mover_job_objects_failed{{{sel}}}") == 0
    assert prom.value(f"mover_job_chunks{{{sel}}}") == len(item.chunks) == 24
    done_chunks = sum(1 for c in item.chunks if c.state == "done")
    assert prom.value(f"mover_job_chunks_done{{{sel}}}") == done_chunks == 24
    assert prom.value(f"mover_job_created_timestamp_seconds{{{sel}}}") == pytest.approx(job.created)
    last = prom.value(f"mover_job_last_progress_timestamp_seconds{{{sel}}}")
    assert job.created < last <= job.finished
    # While it ran: a rate, an ETA, a partial progress; at the end no rate and no ETA.
    assert prom.value(f"max_over_time(mover_job_rate_bytes_per_second{{{sel}}}[5m])") > 0
    assert prom.value(f"max_over_time(mover_job_eta_seconds{{{sel}}}[5m])") > 0
    partial = f"max_over_time((mover_job_done_bytes{{{sel}}} < {size})[5m:1s])"
    assert 0 < prom.value(partial) < size
    assert prom.value(f"mover_job_rate_bytes_per_second{{{sel}}}") == 0
    assert prom.value(f"mover_job_eta_seconds{{{sel}}}") is None

    # The queue of the store: messages waited (24 chunks, 4 slots, 3 streams), in every band.
    q = 'queue="mover.store.vault"'
    # Chunks a worker holds (prefetched, or an ETA retry at the store's cap) are unacked, not
    # waiting: whether any message was seen waiting at a scrape depends on the worker's timing.
    # The queue held the job's work in one form or the other, and an age goes with a wait.
    waited = prom.value(f"max_over_time(mover_queue_messages{{{q}}}[5m])")
    held = (
        f"max_over_time((mover_queue_messages{{{q}}} + mover_queue_unacked_messages{{{q}}})[5m:1s])"
    )
    assert prom.value(held) > 0
    if waited:
        age = f"max_over_time(mover_queue_oldest_message_age_seconds{{{q}}}[5m])"
        assert prom.value(age) > 0
    assert prom.value(f"max_over_time(mover_queue_unacked_messages{{{q}}}[5m])") > 0
    assert prom.value(f"mover_queue_consumers{{{q}}}") == 2
    bands = prom.query(f"mover_queue_band_messages{{{q}}}")
    assert sorted(r["metric"]["priority"] for r in bands) == ["0", "3", "6", "9"]
    assert prom.value(f"mover_queue_messages{{{q}}}") == 0

    # The stores: bytes in equal the job's, the stream cap held.
    vault = 'store="store:vault"'
    # Store counters count attempts: a chunk delivered twice (its ETA retry held past the
    # visibility timeout) really wrote twice. Every attempt here is one whole 2 MiB chunk.
    attempts = prom.value('mover_chunk_duration_seconds_count{queue="mover.store.vault"}')
    assert attempts >= 24
    assert prom.value(f'mover_store_bytes_total{{{vault},direction="in"}}') == attempts * 2 * MiB
    source = f'store="http://{slow_http.url.removeprefix("http://")}"'
    assert prom.value(f'mover_store_bytes_total{{{source},direction="out"}}') >= size
    assert prom.value(f"mover_store_chunks_total{{{vault}}}") == attempts
    assert prom.value(f"sum(mover_store_errors_total{{{vault}}})") == 0
    assert prom.value(f"mover_store_retries_total{{{vault}}}") == 0
    assert prom.value(f"mover_store_streams_limit{{{vault}}}") == 3
    assert 1 <= prom.value(f"max_over_time(mover_store_streams_high_water{{{vault}}}[5m])") <= 3
    assert 1 <= prom.value(f"max_over_time(mover_store_streams{{{vault}}}[5m])") <= 3
    rate_in = (
        f'max_over_time(mover_store_throughput_bytes_per_second{{{vault},direction="in"}}[5m])'
    )
    assert prom.value(rate_in) > 0

    # Workers: the pools they were started with; busy slots seen while the job ran.
    pools = prom.query("mover_worker_pool_processes")
    assert sorted(float(r["value"][1]) for r in pools) == [2.0, 2.0], pools
    assert prom.value("max(max_over_time(mover_worker_busy_slots[5m]))") >= 1

    # Histograms: one duration and one time in queue per chunk attempt.
    hq = 'queue="mover.store.vault"'
    assert prom.value(f"mover_chunk_queue_wait_seconds_count{{{hq}}}") == attempts
    assert prom.value(f'mover_chunk_duration_seconds_bucket{{{hq},le="+Inf"}}') == attempts
    assert prom.value(f'mover_chunk_duration_seconds_bucket{{{hq},le="0.5"}}') == 0  # 2 s each
    assert prom.value(f"mover_chunk_duration_seconds_sum{{{hq}}}") > attempts * 1.0

    # The autoscaler: a target for the queue, a bounded direction, the reason as an info label.
    assert prom.value(f'mover_autoscale_desired_slots{{controller="default",{q}}}') >= 0
    directions = prom.query(f'mover_autoscale_decision{{controller="default",{q}}}')
    assert sorted(r["metric"]["direction"] for r in directions) == ["down", "hold", "up"]
    assert sum(float(r["value"][1]) for r in directions) == 1
    (info,) = prom.query(f'mover_autoscale_decision_info{{controller="default",{q}}}')
    assert info["metric"]["reason"] and info["metric"]["strategy"] == DEFAULT_STRATEGY
    assert prom.value("mover_up") == 1


def test_store_error_rate_alert_fires(monitored: Monitored, slow_http: Any, tmp_path: Path):  # noqa: F811
    """Every chunk of a flaky source first meets an HTTP 503: the retryable errors and the
    retries are counted per store (as many as the workers logged), and the shipped
    MoverStoreErrorRate alert (``for:`` shortened) fires on a real Prometheus."""
    fleet, prom = monitored.fleet, monitored.prometheus
    root = Path(slow_http.root)
    source = f'store="http://{slow_http.url.removeprefix("http://")}"'
    # Counters must exist before they rise for rate() to see a rise: one clean chunk first.
    random_file(root / "clean-monitor.bin", 1 * MiB)
    clean = submit(monitored, f"{slow_http.url}/clean-monitor.bin", str(tmp_path / "c"), "1MiB")
    assert wait_final(fleet.jobs(), clean, 60).state == "done"
    wait_for(
        lambda: prom.value(f"mover_store_chunks_total{{{source}}}"), 30, "the source's counters"
    )
    random_file(root / "flaky-monitor.bin", 6 * MiB)
    job_id = submit(monitored, f"{slow_http.url}/flaky-monitor.bin", str(tmp_path / "f"), "1MiB")
    job = wait_final(fleet.jobs(), job_id, 90)
    assert job.state == "done", job.error
    logs = "".join(w.text() for w in fleet.workers)
    retried = len(re.findall(rf"job {job_id} object 0 chunk \d+: retry 1 in", logs))
    assert retried == 6

    def firing() -> list[dict[str, Any]]:
        alerts = prom.api("alerts")["alerts"]
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == "MoverStoreErrorRate"
            and a["state"] == "firing"
            and a["labels"]["store"] == source.split('"')[1]
        ]

    (alert,) = wait_for(firing, 60, "MoverStoreErrorRate to fire", poll_s=1)
    assert "fails" in alert["annotations"]["summary"]
    # The last retries finish just before the job: give Prometheus a scrape to see them.
    errors = f'mover_store_errors_total{{{source},class="retryable"}}'
    retries = f"mover_store_retries_total{{{source}}}"
    wait_for(lambda: prom.value(retries) == retried, 30, "Prometheus to scrape every retry")
    assert prom.value(errors) == retried  # the clean job before met none
    assert prom.value(f'mover_store_errors_total{{{source},class="checksum"}}') == 0
    assert prom.value(f'mover_store_errors_total{{{source},class="permanent"}}') == 0


def test_dashboard_in_a_real_browser(monitored: Monitored, slow_http: Any, tmp_path: Path):  # noqa: F811
    """Chromium opens the dashboard during a fleet job: the job's progress bar rises, the
    queue shows its depth, the workers their pools; the wrong password gets nothing.
    Screenshots of the page go to docs/ with MOVER_SCREENSHOTS=docs."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        _missing(BinaryNotFound(f"{CHROMIUM} not found: apt-get install chromium"))
    shots = (
        Path(os.environ["MOVER_SCREENSHOTS"]) if os.environ.get("MOVER_SCREENSHOTS") else tmp_path
    )
    shots = shots if shots.is_absolute() else ROOT / shots
    slow_http.rate = MiB // 2  # 4 s a chunk: the job runs for about half a minute
    user, password = DASHBOARD_AUTH.split(":", 1)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            wrong = browser.new_context(http_credentials={"username": user, "password": "nope"})
            assert wrong.new_page().goto(monitored.dashboard_url).status == 401
            wrong.close()
            context = browser.new_context(
                http_credentials={"username": user, "password": password},
                viewport={"width": 1400, "height": 900},
            )
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            page.on("pageerror", lambda e: console.append(str(e)))
            assert page.goto(monitored.dashboard_url).status == 200
            page.locator("#status.up").wait_for(timeout=30_000)
            # The page is open before the job starts (a loaded machine starts browsers slowly).
            job_id = submit(
                monitored, f"{slow_http.url}/slow.bin", str(tmp_path / "copy.bin"), "2MiB"
            )
            row = page.locator(f'tr[data-job="{job_id}"]')
            row.wait_for(timeout=30_000)

            def done_bytes() -> int:
                return int(row.get_attribute("data-done") or 0)

            # 24 chunks published, 4 slots: most wait in the queue at first.
            queue = page.locator('tr[data-queue="mover.file"]')
            depth = wait_for(
                lambda: queue.count() and int(queue.get_attribute("data-depth") or 0),
                60,
                f"a queue depth on the page (console: {console})",
            )
            assert depth > 0
            first = wait_for(lambda: done_bytes() > 0 and done_bytes(), 60, "progress on the page")
            workers = page.locator("tr[data-worker]")
            assert workers.count() == 2
            pools = sorted(workers.nth(i).get_attribute("data-pool") for i in range(2))
            assert pools == ["2", "2"]
            page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
            later = wait_for(lambda: done_bytes() > first and done_bytes(), 60, "progress to rise")
            assert later > first
            assert row.get_attribute("data-state") in ("running", "done")
            flower = page.locator("a#flower")
            assert flower.get_attribute("href") == "http://127.0.0.1:5555/"
            job = wait_final(monitored.fleet.jobs(), job_id, 120)
            assert job.state == "done", job.error
            wait_for(lambda: row.get_attribute("data-state") == "done", 30, "done on the page")
            assert done_bytes() == job.bytes_done == 48 * MiB
            assert "100.0 %" in row.locator(".bar .label").inner_text()
            page.screenshot(path=str(shots / "dashboard-done.png"))
            context.close()
        finally:
            browser.close()


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp and tcp6: no traffic)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
                else:
                    found.add(address)
    return found


def test_auth_and_loopback_by_default(monitored: Monitored):
    """The dashboard refuses a missing or wrong password (401, nothing served) and both
    servers listen on 127.0.0.1 only; a dashboard without credentials refuses to start."""
    for path in ("/", "/api/fleet", "/static/dashboard.js"):
        url = monitored.dashboard_url + path
        assert monitored.get(url)[0] == 401
        status, body = monitored.get(url, "ops:wrong-password")
        assert status == 401 and b"mover" not in body
        assert monitored.get(url, DASHBOARD_AUTH)[0] == 200
    for url in (monitored.metrics_url, monitored.dashboard_url):
        port = int(url.rsplit(":", 1)[1])
        assert _listening_addresses(port) == {"127.0.0.1"}
    env = {k: v for k, v in monitored.fleet.env.items() if k != "MOVER_DASHBOARD_AUTH"}
    out = subprocess.run(
        [*MOVER, "dashboard", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "MOVER_DASHBOARD_AUTH" in out.stderr


def test_wrong_broker_password_answers_up_0(monitored: Monitored):
    """A Redis that refuses the password is an unreachable fleet: mover_up 0, at once."""
    from prometheus_client.exposition import generate_latest

    from mover.monitor.collector import registry_for
    from mover.monitor.view import FleetReader

    url = monitored.fleet.redis.url.replace(PLANTED["broker password"], "wrong")
    reader = FleetReader(url, inspect_interval_s=0)
    try:
        text = generate_latest(registry_for(reader)).decode()
    finally:
        reader.close()
    assert "mover_up 0.0" in text and "wrong" not in text


def test_rules_check_and_grafana_queries_resolve(monitored: Monitored):
    """``promtool check rules`` and the rules' own unit tests pass; every query of the Grafana
    dashboard is valid PromQL on the real Prometheus and names only families that
    ``mover metrics`` exposes."""
    promtool = _tool("promtool")
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", "mover-rules.test.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULES.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    from tests.unit.test_monitor import grafana_exprs, metric_names

    # What mover metrics exposed over the module's jobs (an ETA only while a job moves).
    exposed = families(monitored.get(f"{monitored.metrics_url}/metrics")[1].decode())
    exposed |= set(
        monitored.prometheus.api("label/__name__/values", **{"match[]": '{__name__=~"mover_.+"}'})
    )
    for expr in grafana_exprs(GRAFANA):
        monitored.prometheus.query(expr)  # raises unless Prometheus accepts it
        assert metric_names(expr) <= exposed, expr


def test_json_logs_carry_job_fields_and_no_secret_anywhere(monitored: Monitored):
    """Worker lines are JSON with time, level, logger, message; lines about a chunk carry its
    job, item, chunk, store and queue. No planted secret is in any metric, page, Prometheus
    label, worker or server log, or a JSON-logging CLI run."""
    assert monitored.jobs_seen, "run after the tests that submit jobs"
    fleet = monitored.fleet
    lines = [
        json.loads(line)
        for w in fleet.workers
        for line in w.text().splitlines()
        if line.startswith("{")
    ]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    chunk_lines = [line for line in lines if re.search(r"chunk \d+ done", line["message"])]
    assert chunk_lines
    for line in chunk_lines:
        match = re.search(r"job (\w+) object (\d+) chunk (\d+) done", line["message"])
        assert (line["job"], line["item"], line["chunk"]) == (
            match.group(1),
            int(match.group(2)),
            int(match.group(3)),
        )
        assert line["queue"] and line["store"]
    vault_lines = [line for line in chunk_lines if line["queue"] == "mover.store.vault"]
    assert vault_lines and all(line["store"] == "store:vault" for line in vault_lines)
    # Celery's own line about the task, logged while it ran, carries the fields too.
    succeeded = [line for line in lines if "succeeded in" in line["message"] and line.get("job")]
    assert succeeded

    cli = fleet.mover("--debug", "status", monitored.jobs_seen[0])
    assert cli.returncode == 0, cli.stderr
    cli_lines = [json.loads(line) for line in cli.stderr.splitlines() if line.startswith("{")]
    assert cli_lines, cli.stderr  # --debug logs (Redis, the job store) as JSON

    surfaces = {
        "metrics": monitored.get(f"{monitored.metrics_url}/metrics")[1],
        "dashboard page": monitored.get(monitored.dashboard_url, DASHBOARD_AUTH)[1],
        "dashboard api": monitored.get(f"{monitored.dashboard_url}/api/fleet", DASHBOARD_AUTH)[1],
        "dashboard js": monitored.get(
            f"{monitored.dashboard_url}/static/dashboard.js", DASHBOARD_AUTH
        )[1],
        "prometheus series": json.dumps(
            monitored.prometheus.query('{__name__=~"mover_.+"}')
        ).encode(),
        "cli": (cli.stdout + cli.stderr).encode(),
    }
    for process in [*fleet.workers, *monitored.services]:
        surfaces[f"{process.name} log"] = process.log.read_bytes()
    for name, text in surfaces.items():
        assert text, name
        for what, secret in PLANTED.items():
            assert secret.encode() not in text, f"the {what} is in the {name}"
