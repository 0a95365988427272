"""Per-store limits (workers/limits.py) on fakeredis: the fleet-wide stream semaphore, lease
expiry and renewal, the bandwidth schedule, where limits come from, and the queue bounds the
controller hands to strategies."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import fakeredis
import pytest

from mover.errors import ConfigError
from mover.fleetstate import limits
from mover.fleetstate.limits import LeaseUnavailable, StoreLimit, acquire_limits
from mover.location import parse


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def test_semaphore_admits_max_streams_then_refuses(r: fakeredis.FakeRedis) -> None:
    cap = StoreLimit("store:a", max_streams=2)
    first, second = acquire_limits(r, [cap]), acquire_limits(r, [cap])
    with pytest.raises(LeaseUnavailable) as err:
        acquire_limits(r, [cap])
    assert err.value.key == "store:a" and 0 < err.value.retry_after_s <= 1.5
    assert "max_streams 2" in str(err.value)
    assert limits.held(r, "store:a") == 2
    first.release()
    third = acquire_limits(r, [cap])
    assert limits.held(r, "store:a") == 2
    second.release()
    third.release()
    third.release()  # idempotent
    assert limits.held(r, "store:a") == 0
    assert limits.high_water_mark(r, "store:a") == 2


def test_unlimited_store_takes_no_lease(r: fakeredis.FakeRedis) -> None:
    lease = acquire_limits(r, [StoreLimit("store:free")] * 50)
    assert lease.tokens == [] and r.keys("mover:limit:*") == []


def test_all_or_nothing_across_source_and_destination(r: fakeredis.FakeRedis) -> None:
    src, dst = StoreLimit("store:src", max_streams=5), StoreLimit("store:dst", max_streams=1)
    held = acquire_limits(r, [dst])
    with pytest.raises(LeaseUnavailable):
        acquire_limits(r, [src, dst])
    assert limits.held(r, "store:src") == 0, "the source's lease was given back"
    held.release()
    with acquire_limits(r, [src, dst]) as both:
        assert len(both.tokens) == 2
    assert limits.held(r, "store:src") == limits.held(r, "store:dst") == 0


def test_same_store_on_both_sides_counts_once(r: fakeredis.FakeRedis) -> None:
    cap = StoreLimit("store:same", max_streams=1)
    with acquire_limits(r, [cap, cap]):
        assert limits.held(r, "store:same") == 1


def test_expired_lease_of_a_dead_worker_is_reclaimed(
    r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "LEASE_S", 0.3)
    cap = StoreLimit("store:b", max_streams=1)
    dead = acquire_limits(r, [cap])
    limits._get_renewer().remove(r, "store:b", dead.tokens[0][1])  # its process is gone
    with pytest.raises(LeaseUnavailable):
        acquire_limits(r, [cap])
    time.sleep(0.4)
    acquire_limits(r, [cap]).release()


def test_live_lease_is_renewed(r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "LEASE_S", 0.3)
    cap = StoreLimit("store:c", max_streams=1)
    with acquire_limits(r, [cap]):
        for _ in range(4):
            time.sleep(0.15)
            limits._get_renewer().renew_now()
        with pytest.raises(LeaseUnavailable):
            acquire_limits(r, [cap])
    acquire_limits(r, [cap]).release()


def test_concurrent_acquirers_never_exceed_the_cap(r: fakeredis.FakeRedis) -> None:
    """20 threads, 200 attempts, cap 3: the holders counted by the test never pass 3, and
    neither does the high-water mark."""
    cap = StoreLimit("store:race", max_streams=3)
    lock = threading.Lock()
    state = {"now": 0, "peak": 0, "ok": 0}

    def run() -> None:
        for _ in range(10):
            try:
                lease = acquire_limits(r, [cap])
            except LeaseUnavailable:
                continue
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
                state["ok"] += 1
            time.sleep(0.002)
            with lock:
                state["now"] -= 1
            lease.release()

    threads = [threading.Thread(target=run) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["ok"] > 0 and state["peak"] <= 3
    assert limits.high_water_mark(r, "store:race") <= 3


def test_bandwidth_schedule(r: fakeredis.FakeRedis) -> None:
    """1 MB/s and 1 s of burst: two 1 MB chunks pass at once (the second is scheduled within
    the burst), the third must wait about a second."""
    cap = StoreLimit("store:slow", max_bytes_per_s=1_000_000)
    acquire_limits(r, [cap], nbytes=1_000_000).release()
    acquire_limits(r, [cap], nbytes=1_000_000).release()
    with pytest.raises(LeaseUnavailable) as err:
        acquire_limits(r, [cap], nbytes=1_000_000)
    assert "max_bytes_per_s" in str(err.value)
    assert 0.4 <= err.value.retry_after_s <= 1.6


def test_limit_from_options() -> None:
    assert limits.limit_from_options("store:x", {"max_streams": 4}) == StoreLimit("store:x", 4)
    rate = limits.limit_from_options("store:x", {"max_bytes_per_s": "2MiB"})
    assert rate.max_bytes_per_s == 2 * 1024 * 1024 and rate.max_streams is None
    assert not limits.limit_from_options("store:x", {}).limited
    for bad in ({"max_streams": 0}, {"max_streams": "many"}, {"max_bytes_per_s": -1}):
        with pytest.raises(ConfigError, match="store:x"):
            limits.limit_from_options("store:x", bad)


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    monkeypatch.setenv("MOVER_CONFIG", str(path))
    limits._limits_cache.clear()


def test_limits_from_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _config(
        tmp_path,
        monkeypatch,
        f"""
[stores.images]
url = "file://{tmp_path}/images/"
max_streams = 3

[limits."http://slow.example.org"]
max_streams = 2

[limits.s3]
max_streams = 10
max_bytes_per_s = "100MiB"
""",
    )
    assert limits.limit_for(parse("store:images/a.qcow2")) == StoreLimit("store:images", 3)
    assert limits.limit_for(parse("http://slow.example.org/x")).max_streams == 2
    s3 = limits.limit_for(parse("s3://any-bucket/key"))
    assert (s3.key, s3.max_streams, s3.max_bytes_per_s) == ("s3", 10, 100 * 1024 * 1024)
    assert not limits.limit_for(parse("http://fast.example.org/x")).limited
    bounds = limits.queue_bounds(["mover.store.images", "mover.s3", "mover.file", "mover"], (1, 16))
    assert bounds == {"mover.store.images": (1, 3), "mover.s3": (1, 10)}
    assert limits.queue_bounds(["mover.store.images"], (0, 2)) == {}  # already below the cap
