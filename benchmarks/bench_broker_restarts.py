#!/usr/bin/env python3
"""Broker restarts under a running fleet job, many times: how often a worker is lost.

Each round publishes a job of 12 chunks from a throttled HTTP source (2 MiB chunks at 3 MiB/s)
to two ``mover worker`` processes (prefork, ``-c 2``), waits for two chunks, then restarts the
private Redis at a random moment: SIGTERM or SIGKILL at random, and in half the rounds a second
restart right after (a restart during the reconnect). It then counts how the round ended:

- the job: done (sha256 of the copy equal to the source's), or not within 60 s;
- every worker: answering a Celery ping within 30 s, exited (code; the script restarts it as a
  supervisor would), or alive and silent (a zombie, the one outcome that must never happen).

The figures are what the fleet's fault handling is measured by (issue 9): with Celery 5.7 and
kombu 5.7, before ``mover.workers.consumer``'s guards, about one round in ten lost a worker
(exit 1, ``AttributeError: 'NoneType' object has no attribute 'hostname'``).

    .venv/bin/python benchmarks/bench_broker_restarts.py --rounds 30 --seed 1
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness/, beside this file
import harness as h

ROOT = h.REPO
sys.path.insert(0, str(ROOT))

from tests.integration import test_fleet as kit  # noqa: E402 - the fleet test helpers
from tests.servers import RedisServer  # noqa: E402


def ping(worker: kit.Worker, timeout_s: float) -> bool:
    from mover.workers.app import make_app

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and worker.proc.poll() is None:
        app = make_app()
        try:
            if app.control.ping(destination=[f"{worker.name}@{os.uname().nodename}"], timeout=1):
                return True
        except Exception:
            time.sleep(0.5)
        finally:
            app.close()
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"seed {args.seed}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    folder = Path(tempfile.mkdtemp(prefix="mover-restarts-"))
    root = folder / "http"
    root.mkdir()
    kit.random_file(root / "slow.bin", 24 * kit.MiB)
    server = ThreadingHTTPServer(("127.0.0.1", 0), kit._Throttled)
    server.daemon_threads = True
    server.root, server.rate, server.seen = root, 3 * kit.MiB, set()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    tally = {"done": 0, "not done": 0, "answering": 0, "exited": 0, "zombie": 0}
    try:
        with RedisServer() as redis_server:
            env = dict(
                os.environ,
                MOVER_BROKER_URL=redis_server.url,
                MOVER_STATE_DIR=str(folder / "state"),
                MOVER_CONFIG=str(folder / "config.toml"),
                MOVER_VISIBILITY_TIMEOUT_S="10",
                MOVER_RESTORE_INTERVAL_S="2",
                PYTHONPATH=str(ROOT),
            )
            os.environ["MOVER_BROKER_URL"] = redis_server.url
            fleet = kit.Fleet(redis_server, env, folder)
            workers = [fleet.start_worker("w1"), fleet.start_worker("w2")]
            fleet.wait_ready(*workers)
            jobs = fleet.jobs()
            for n in range(args.rounds):
                dst = folder / f"out{n}.bin"
                job_id = kit.submit_slow(fleet, server, dst)
                kit.wait_for(lambda j=job_id: kit.chunks_done(jobs, j) >= 2, 60, "two chunks")
                time.sleep(rng.random() * 2)
                redis_server.restart(hard=rng.random() < 0.5)
                if rng.random() < 0.5:
                    time.sleep(rng.random() * 1.5)
                    redis_server.restart(hard=rng.random() < 0.5)
                state = None
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        state = jobs.get(job_id).state
                    except Exception:
                        state = None
                    if state in ("done", "failed", "cancelled"):
                        break
                    time.sleep(0.5)
                ok = state == "done" and kit.sha256(dst) == kit.sha256(root / "slow.bin")
                tally["done" if ok else "not done"] += 1
                outcomes = []
                for i, w in enumerate(workers):
                    if w.proc.poll() is not None:
                        tally["exited"] += 1
                        outcomes.append(f"{w.name} exited {w.proc.returncode}")
                        workers[i] = fleet.start_worker(f"{w.name}-{n}")
                        fleet.wait_ready(workers[i])
                    elif ping(w, 30):
                        tally["answering"] += 1
                        outcomes.append(f"{w.name} answers")
                    else:
                        tally["zombie"] += 1
                        outcomes.append(f"{w.name} ZOMBIE")
                print(f"round {n:3d}: job {state}; {', '.join(outcomes)}", flush=True)
            for w in workers:
                fleet.stop(w)
    finally:
        server.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    print(" | ".join(f"{k}: {v}" for k, v in tally.items()))
    rows = [
        h.limit_row(
            f"{args.rounds} restarts: {what}",
            str(tally[key]),
            tally[key] == 0,
            "0 (issue 9)",
        )
        for key, what in (
            ("zombie", "workers alive and not answering"),
            ("not done", "jobs not done (sha256-equal) within 60 s"),
        )
    ]
    h.print_targets(rows, "targets", note="")
    return 1 if tally["zombie"] or tally["not done"] else 0


if __name__ == "__main__":
    sys.exit(main())
