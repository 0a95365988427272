"""mover's metrics on fakeredis: what a chunk records, what a look at the fleet reads back, and
the Prometheus families made of it. The real fleet, a real Prometheus and a real browser are in
tests/integration/test_monitor.py."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

fakeredis = pytest.importorskip("fakeredis")

from prometheus_client.exposition import generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from mover.errors import VerificationFailed  # noqa: E402
from mover.fleetstate import metrics_recorder as mr  # noqa: E402
from mover.fleetstate.observer import band_keys, record_chunk  # noqa: E402
from mover.jobs import ChunkRecord, Item, Job  # noqa: E402
from mover.jobstores.redis import RedisJobStore  # noqa: E402
from mover.monitor.collector import registry_for  # noqa: E402
from mover.monitor.view import FleetReader, display_url  # noqa: E402
from mover.motion import Endpoint  # noqa: E402
from mover.resolve import open_location  # noqa: E402

MiB = 1 << 20


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def endpoint(url: str) -> Endpoint:
    store, location = open_location(url)
    return Endpoint(store, location)


def make_job(jobs: RedisJobStore, job_id: str, chunks: int = 4, state: str = "running") -> Job:
    items = [
        Item(
            i,
            f"memory://src/{i}?X-Token=planted",
            f"memory://dst/{i}",
            size=chunks * MiB,
            state=state,
            strategy="streaming",
            chunks=[ChunkRecord(c, c * MiB, MiB) for c in range(chunks)],
        )
        for i in range(2)
    ]
    job = Job(job_id, "memory://src/?X-Token=planted", "memory://dst/", state=state)
    job.executor, job.items = "celery", items
    jobs.create(job)
    return job


def scrape(reader: FleetReader) -> dict[str, dict[tuple, float]]:
    """name -> {sorted label items: value} of one scrape, parsed by prometheus_client."""
    text = generate_latest(registry_for(reader)).decode()
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def reader_on(r: fakeredis.FakeRedis, **kwargs: object) -> FleetReader:
    return FleetReader(
        "redis://unused", clients=(r, r), inspect_interval_s=0, queues=["mover.memory"], **kwargs
    )


def test_a_chunk_records_stores_histograms_and_job_progress(r: fakeredis.FakeRedis) -> None:
    jobs = RedisJobStore(client=r)
    make_job(jobs, "j1")
    src, dst = endpoint("memory://src/0"), endpoint("memory://dst/0")
    now = time.time()
    request = SimpleNamespace(retries=0, eta=None, **{mr.SENT_HEADER: now - 20.0})
    started = time.monotonic() - 0.3
    for c in range(3):
        jobs.chunk_done("j1", 0, c, {"part": c + 1, "size": MiB})
        record_chunk(
            r,
            "mover.memory",
            MiB,
            ok=True,
            now=now,
            job="j1",
            endpoints=(src, dst),
            started=started,
            request=request,
        )
    retry = SimpleNamespace(retries=1, eta=None)
    record_chunk(
        r,
        "mover.memory",
        0,
        ok=False,
        now=now,
        job="j1",
        endpoints=(src, dst),
        started=started,
        request=retry,
        error=VerificationFailed("part 4 differs"),
    )
    m = scrape(reader_on(r))
    assert m["mover_up"][()] == 1
    assert m["mover_store_bytes_total"][(("direction", "in"), ("store", "memory://dst"))] == 3 * MiB
    assert (
        m["mover_store_bytes_total"][(("direction", "out"), ("store", "memory://src"))] == 3 * MiB
    )
    assert m["mover_store_chunks_total"][(("store", "memory://dst"),)] == 4
    errors = m["mover_store_errors_total"]
    assert errors[(("class", "checksum"), ("store", "memory://dst"))] == 1
    assert errors[(("class", "retryable"), ("store", "memory://dst"))] == 0
    assert m["mover_store_retries_total"][(("store", "memory://src"),)] == 1
    duration = m["mover_chunk_duration_seconds_count"][(("queue", "mover.memory"),)]
    assert duration == 4
    wait = m["mover_chunk_queue_wait_seconds_bucket"]
    # Published 20 s before the chunk started 0.3 s ago: about 19.7 s in the queue (less the
    # time this test takes: the bounds leave seconds of margin on a loaded machine).
    assert wait[(("le", "10.0"), ("queue", "mover.memory"))] == 0
    assert wait[(("le", "30.0"), ("queue", "mover.memory"))] == 3
    job = (("job_id", "j1"),)
    assert m["mover_job_objects"][job] == 2
    assert m["mover_job_chunks"][job] == 8 and m["mover_job_chunks_done"][job] == 3
    assert m["mover_job_size_bytes"][job] == 8 * MiB and m["mover_job_done_bytes"][job] == 3 * MiB
    assert m["mover_job_state"][(("job_id", "j1"), ("state", "running"))] == 1
    assert m["mover_job_state"][(("job_id", "j1"), ("state", "done"))] == 0
    assert m["mover_job_last_progress_timestamp_seconds"][job] == pytest.approx(now)


def test_job_rate_and_eta_from_the_recent_seconds(r: fakeredis.FakeRedis) -> None:
    jobs = RedisJobStore(client=r)
    make_job(jobs, "j2")
    now = time.time()
    for back in range(1, 6):  # 1 MiB a second for the last 5 seconds
        record_chunk(r, "mover.memory", MiB, ok=True, now=now - back, job="j2")
        jobs.chunk_done("j2", 0, back - 1, {"part": back, "size": MiB})
    state = reader_on(r, rate_window_s=10).read()
    (job,) = state.jobs
    assert job.rate_bytes_per_s == pytest.approx(5 * MiB / 10, rel=0.01)
    assert job.eta_s == pytest.approx((8 - 5) * MiB / job.rate_bytes_per_s, rel=0.01)
    assert "planted" not in job.source and job.source == "memory://src/"


def test_finished_jobs_drop_out_after_the_recent_window(r: fakeredis.FakeRedis) -> None:
    jobs = RedisJobStore(client=r)
    make_job(jobs, "old", state="done")
    jobs.update_job("old", state="done", finished=time.time() - 3600)
    make_job(jobs, "new", state="done")
    jobs.update_job("new", state="done", finished=time.time())
    ids = [j.id for j in reader_on(r, recent_s=600).read().jobs]
    assert ids == ["new"]
    (new,) = reader_on(r, recent_s=600).read().jobs
    assert new.done_bytes == new.size_bytes == 8 * MiB and new.eta_s is None


def test_queue_depth_over_every_band_and_oldest_age(r: fakeredis.FakeRedis) -> None:
    now = time.time()

    def message(sent: float | None) -> str:
        headers = {"task": "mover.chunk.copy", "id": "x"}
        if sent is not None:
            headers[mr.SENT_HEADER] = sent
        return json.dumps({"body": "", "headers": headers, "properties": {}})

    bands = band_keys("mover.memory")
    r.lpush(bands[0], message(now - 40), message(now - 1))
    r.lpush(bands[2], message(now - 90))  # priority 6: the oldest
    r.lpush(bands[3], message(None))  # a client that does not stamp
    r.hset("unacked", "tag1", json.dumps([{}, "", "mover.memory"]))
    m = scrape(reader_on(r))
    q = (("queue", "mover.memory"),)
    assert m["mover_queue_messages"][q] == 4
    assert m["mover_queue_band_messages"][(("priority", "6"), ("queue", "mover.memory"))] == 1
    assert m["mover_queue_unacked_messages"][q] == 1
    assert 90 <= m["mover_queue_oldest_message_age_seconds"][q] < 120


def test_autoscale_decision_bounded_direction_and_reason_info(r: fakeredis.FakeRedis) -> None:
    mr.save_decision(
        r,
        "default",
        "step",
        {"mover.s3": 6, "mover.file": 2},
        {"mover.s3": 4, "mover.file": 2},
        {"mover.s3": "backlog 40 > 20 per slot: +2", "mover.file": "idle"},
        time.time(),
    )
    m = scrape(reader_on(r))
    decision = m["mover_autoscale_decision"]
    assert decision[(("controller", "default"), ("direction", "up"), ("queue", "mover.s3"))] == 1
    assert (
        decision[(("controller", "default"), ("direction", "hold"), ("queue", "mover.file"))] == 1
    )
    assert (
        m["mover_autoscale_desired_slots"][(("controller", "default"), ("queue", "mover.s3"))] == 6
    )
    info = m["mover_autoscale_decision_info"]
    assert any(dict(k).get("reason") == "backlog 40 > 20 per slot: +2" for k in info)


def test_autoscale_decision_fields_the_log_line_states(r: fakeredis.FakeRedis) -> None:
    """The real pool, busy slots, backlog and rate a decision was made from (issue 16)."""
    fields = {"pool": 2, "busy": 2, "backlog": 40, "bytes_per_s": 110.5 * 2**20, "action": "grow"}
    mr.save_decision(
        r, "default", "step", {"mover.s3": 3}, {"mover.s3": 2}, {"mover.s3": "x"}, time.time(),
        queues={"mover.s3": fields},
    )  # fmt: skip
    m = scrape(reader_on(r))
    key = (("controller", "default"), ("queue", "mover.s3"))
    assert m["mover_autoscale_pool_slots"][key] == 2
    assert m["mover_autoscale_busy_slots"][key] == 2
    assert m["mover_autoscale_backlog_chunks"][key] == 40
    assert m["mover_autoscale_observed_bytes_per_second"][key] == 110.5 * 2**20


def test_stores_beyond_the_cap_are_counted_as_other(
    r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mr, "MAX_STORES", 2)
    monkeypatch.setattr(mr, "_known_stores", set())
    for n in range(4):
        src, dst = endpoint(f"memory://a{n}/k"), endpoint(f"memory://b{n}/k")
        record_chunk(r, "mover.memory", 10, ok=True, endpoints=(src, dst))
    names = {s.key for s in reader_on(r).read().stores}
    assert names == {"memory://a0", "memory://b0", "other"}


def test_unreachable_redis_answers_up_0() -> None:
    """A closed port and a port that accepts but never answers: mover_up 0, no exception."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        for port in (dead, silent.getsockname()[1]):
            reader = FleetReader(f"redis://:pw@127.0.0.1:{port}/0", timeout_s=0.5)
            text = generate_latest(registry_for(reader)).decode()
            assert "mover_up 0.0" in text and "mover_queue" not in text
            reader.close()


def test_display_url_drops_query_and_user_info() -> None:
    assert display_url("https://u:p@host/x.qcow2?X-Amz-Signature=abc#f") == "https://host/x.qcow2"


# -- the Grafana dashboard's queries ----------------------------------------------------------

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "mover-dashboard.json"
_PROMQL_WORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan",
}  # fmt: skip


def grafana_exprs(path: Path) -> list[str]:
    """Every PromQL ``expr`` of a Grafana dashboard JSON, panels in rows included."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(path.read_text()))
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions,
    keywords, label names (in braces or grouping clauses) or durations (in brackets)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("(") or match.group(0) in _PROMQL_WORDS:
            continue
        names.add(match.group(0))
    return names


def test_metric_names_of_promql() -> None:
    expr = (
        'sum by (store, instance) (rate(mover_store_errors_total{class="x"}[5m])) / '
        "on (job_id) group_left mover_job_done_bytes > 0.1 and time() - mover_up offset 5m"
    )
    assert metric_names(expr) == {"mover_store_errors_total", "mover_job_done_bytes", "mover_up"}


def test_grafana_queries_name_exposed_families(r: fakeredis.FakeRedis) -> None:
    """Every query of deploy/grafana names only families that mover metrics exposes (with
    every family filled: a job, a store with a stream cap, a decision, a worker)."""
    from prometheus_client.core import CollectorRegistry

    from mover.monitor.collector import families
    from mover.monitor.view import StoreStat, WorkerStat

    jobs = RedisJobStore(client=r)
    make_job(jobs, "j3")
    src, dst = endpoint("memory://src/0"), endpoint("memory://dst/0")
    request = SimpleNamespace(retries=1, eta=None, **{mr.SENT_HEADER: time.time() - 1})
    record_chunk(
        r, "mover.memory", MiB, ok=True, now=time.time() - 1, job="j3", endpoints=(src, dst),
        started=time.monotonic(), request=request,
    )  # fmt: skip
    mr.save_decision(r, "default", "step", {"mover.memory": 2}, {}, {"mover.memory": "x"}, 1.0)
    state = reader_on(r).read()
    state.workers = [WorkerStat("w1@h", 2, 1, ("mover.memory",))]
    state.workers_age_s = 0.5
    state.stores.append(StoreStat("store:capped", streams=1, streams_limit=3, streams_high_water=2))

    class Once:
        def collect(self):  # type: ignore[no-untyped-def]
            return families(state)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Once())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    exposed = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    exprs = grafana_exprs(GRAFANA)
    assert len(exprs) >= 20
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exposed, f"{expr!r} names {sorted(names - exposed)}, not exposed"


# -- the HTTP side ----------------------------------------------------------------------------


def test_dashboard_server_routes_and_basic_auth(r: fakeredis.FakeRedis) -> None:
    """Every route needs the password (a wrong one gets 401 and nothing else); the page, its
    two static files and the JSON are served; nothing else is read from disk."""
    import base64
    import urllib.error
    import urllib.request

    from mover.monitor.dashboard import Dashboard
    from mover.monitor.web import MonitorServer

    dashboard = Dashboard(reader_on(r), refresh_s=0.2)
    dashboard.sample()
    server = MonitorServer("127.0.0.1", 0, dashboard.routes(), "ops:s3cret,bob:pw2")
    server.start()

    def get(path: str, auth: str | None) -> tuple[int, bytes, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}")
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                return reply.status, reply.read(), reply.headers["Content-Type"]
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers["Content-Type"]

    try:
        for auth in (None, "ops:wrong", "ops:", "bob:s3cret", "nobody"):
            status, body, _ = get("/api/fleet", auth)
            assert status == 401 and body == b"authentication required\n", auth
        status, body, kind = get("/", "ops:s3cret")
        assert status == 200 and kind.startswith("text/html") and b"dashboard.js" in body
        assert get("/static/dashboard.js", "bob:pw2")[2].startswith("text/javascript")
        assert get("/static/dashboard.css", "bob:pw2")[2].startswith("text/css")
        for path in ("/static/../view.py", "/static/dashboard.html", "/nope"):
            assert get(path, "ops:s3cret")[0] == 404, path
        status, body, kind = get("/api/fleet", "ops:s3cret")
        state = json.loads(body)["state"]
        assert kind == "application/json" and state["up"] is True
        assert {q["name"] for q in state["queues"]} >= {"mover.memory"}
    finally:
        server.shutdown()
        server.server_close()


def test_json_logs_carry_the_autoscale_decision_fields() -> None:
    import logging

    from mover.monitor.logs import JsonFormatter

    record = logging.LogRecord("mover.autoscale", logging.INFO, __file__, 1, "line", (), None)
    record.autoscale = [{"queue": "mover.s3", "pool": 2, "busy": 1, "action": "hold"}]
    line = json.loads(JsonFormatter().format(record))
    assert line["autoscale"] == [{"queue": "mover.s3", "pool": 2, "busy": 1, "action": "hold"}]
    plain = logging.LogRecord("mover.autoscale", logging.INFO, __file__, 1, "line", (), None)
    assert "autoscale" not in json.loads(JsonFormatter().format(plain))
