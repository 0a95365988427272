"""Swift faults: the whole Swift (proxy, account, container, object servers) restarted in the
middle of an upload or a download, gracefully (SIGTERM) or not (SIGKILL), and tokens that
expire while a copy runs (tempauth's ``token_life`` is 1 s on this server).

mover talks to Swift through the fault proxy, which paces requests (each segment PUT or
ranged GET answered a little late, so that a copy lasts several seconds) and records every
answer, so that a token fault counts only when a 401 really happened. The harness reads back
with its own swiftclient connection to Swift itself; an upload must leave no segment in
``<container>_segments`` that its object does not use.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faultproxy import FaultProxy, Rule
from tests.faults import rigs
from tests.faults.harness import (
    MISSED,
    Fault,
    FileDest,
    MiB,
    SwiftDest,
    case_ids,
    conclude,
    count,
    judge,
    kind_of,
    rng,
    sha256_bytes,
    wait_until,
)

FAMILY = "swift"
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults, pytest.mark.swift]

KINDS = [
    ("upload", "restart"),
    ("upload", "token"),
    ("download", "restart"),
    ("download", "token"),
]
CASES = count(8, 3)
CONTAINER = "faults-swift"


@pytest.fixture(scope="module")
def swift(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, FaultProxy, Any]]:
    from swiftclient.client import Connection

    from tests.faults.conftest import serving

    with (
        serving(rigs.ShortTokenSwift) as server,
        FaultProxy("127.0.0.1", server.port) as proxy,
    ):
        conn = Connection(**server.connection_kwargs(), retries=8)
        conn.put_container(CONTAINER)
        yield server, proxy, conn
        conn.close()


@pytest.mark.parametrize("index", range(CASES), ids=case_ids(KINDS, CASES))
def test_swift(
    index: int,
    fault: Fault,
    swift: tuple[Any, FaultProxy, Any],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    server, proxy, conn = swift
    direction, kind = kind_of(KINDS, index, CASES)
    r = rng(FAMILY, index)
    proxy.reseed(r.randrange(2**31))
    size = r.randint(5 * MiB, 8 * MiB)
    data = r.randbytes(size)
    n = -(-size // MiB)
    # A token fault needs a copy longer than the token's life: one stream, slower answers.
    streams = 1 if kind == "token" else r.choice([1, 2])
    pace_s = round(r.uniform(0.35, 0.45) if kind == "token" else r.uniform(0.3, 0.5), 2)
    fault.params.update(direction=direction, kind=kind, size=size, chunks=n, streams=streams)
    fault.params["pace_s"] = pace_s
    # A store with a short socket time-out: a connection that hangs across a restart costs
    # seconds, not the default minute.
    rigs.write_config(tmp_path, {"sw": {"url": f"swift://{CONTAINER}/", "timeout_s": 5}})
    env = rigs.mover_env(
        tmp_path,
        ST_AUTH=f"{proxy.url}/auth/v1.0",
        ST_USER=server.user,
        ST_KEY=server.key,
    )
    name = f"{direction}-{index:03d}-{r.randrange(10**6)}.bin"
    dest: Any
    if direction == "upload":
        src = tmp_path / "src.bin"
        src.write_bytes(data)
        dest = SwiftDest(conn, CONTAINER, name, f"store:sw/{name}")
        args = [str(src), dest.url]
        proxy.add(Rule("stall", "PUT", "_segments/", times=None, stall_s=pace_s))
        progress = "PUT"
    else:
        conn.put_object(CONTAINER, name, io.BytesIO(data), content_length=size)
        dest = FileDest(tmp_path / "out" / "copy.bin")
        dest.path.parent.mkdir()
        args = [f"store:sw/{name}", str(dest.path)]
        proxy.add(Rule("stall", "GET", name, "Range", times=None, stall_s=pace_s))
        progress = "GET"
    cli = rigs.start(
        env, tmp_path, "copy", "-q", *args, "--chunk-size", "1MiB", "--streams", str(streams)
    )

    if kind == "restart":
        after = r.randint(1, n - 2)
        hard = r.random() < 0.5
        fault.params.update(after_parts=after, hard=hard)

        def parts_done() -> bool:
            return sum(1 for m, p, s in list(proxy.answers) if m == progress and s < 300) >= after

        if wait_until(parts_done, 60) and cli.alive():
            server.restart(hard=hard)
            fault.injected = 1
    result = cli.result(180)
    if kind == "token":
        expired = sum(1 for _, _, status in list(proxy.answers) if status == 401)
        fault.params["expired_tokens"] = expired
        fault.injected = expired
    proxy.reseed(0)
    if not fault.injected:
        fault.outcome = MISSED
    else:
        job = rigs.embedded_job(tmp_path)
        judge(fault, rigs.verdict_of(job, [result], fault), dest, {"source": sha256_bytes(data)})
    conclude(fault, request.node.nodeid)
