#!/usr/bin/env python3
"""What watching the fleet costs a transfer (issue 11): a 1 GiB fleet copy, file to file, with
and without ``mover metrics`` being scraped every second.

The target: a scrape during a 1 GiB copy costs under 2 % of its time. Two figures answer it:

* **scrape cost**: the CPU time the ``mover metrics`` process used during the scraped copies
  (from /proc) over their time, less the same share during the copies without scrapes (its
  background ``inspect()`` of the workers): what the scrapes take from the 2 cores the
  transfer runs on. Beside it, the scrapes' wall time over the copies' time, an upper bound
  that counts the waits on Redis round trips and on a busy CPU as cost;
* **end to end**: the median copy time with scrapes against without (interleaved runs, so the
  machine's drift hits both); on a shared 2-core machine single runs vary by several per cent,
  so this figure is noisy in both directions: read it beside the first.

Scrapes run every second, 15 times Prometheus's default rate, from a thread of this process
against a ``mover metrics`` process of the same fleet. The fleet is the one of
``bench_fleet.py`` (a private Redis from tests/servers.py, two ``mover worker`` processes,
prefork ``-c 2``); everything is stopped by PID at the end.

    .venv/bin/python benchmarks/bench_metrics.py                 # 1 GiB, 3 runs each
    .venv/bin/python benchmarks/bench_metrics.py --quick         # 256 MiB, 2 runs each
    .venv/bin/python benchmarks/bench_metrics.py --save benchmarks/results-metrics.txt
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_fleet import (  # noqa: E402
    MOVER,
    Setup,
    loadavg,
    mover_copy,
    random_file,
    start_workers,
    stop_workers,
    warm,
)

from tests.servers import RedisServer, free_port  # noqa: E402

MiB = 1 << 20


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Scraper:
    """Scrapes ``url`` every ``every_s`` in a thread while :attr:`on`; keeps each duration."""

    def __init__(self, url: str, every_s: float = 1.0) -> None:
        self.url = url
        self.every_s = every_s
        self.on = threading.Event()
        self.stop = threading.Event()
        self.durations: list[float] = []
        self.failures = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def scrape(self) -> float:
        started = time.perf_counter()
        with urllib.request.urlopen(self.url, timeout=10) as reply:
            body = reply.read()
        assert b"mover_up 1.0" in body, body[:200]
        return time.perf_counter() - started

    def _loop(self) -> None:
        while not self.stop.is_set():
            if self.on.wait(0.1):
                try:
                    self.durations.append(self.scrape())
                except Exception:
                    self.failures += 1
                self.stop.wait(self.every_s)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--chunk-size", default="64MiB")
    p.add_argument("--quick", action="store_true", help="256 MiB, 2 runs")
    p.add_argument("--save", type=Path, help="also write the report to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.size_mib, args.runs = 256, 2
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="mover-bench-metrics-"))
    redis = RedisServer().start()
    env = {
        **__import__("os").environ,
        "MOVER_BROKER_URL": redis.url,
        "MOVER_STATE_DIR": str(work / "state"),
        "MOVER_CONFIG": str(work / "config.toml"),
        "PYTHONPATH": str(ROOT),
    }
    st = Setup(work, env, redis, None)  # type: ignore[arg-type]  # no S3 here
    metrics = None
    scraper = None
    try:
        st.load_start = loadavg()
        start_workers(st, 2, 2)
        port = free_port()
        metrics = subprocess.Popen(
            [*MOVER, "metrics", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(work / "metrics.log", "wb"),  # noqa: SIM115 - closed with the process
            start_new_session=True,
        )
        scraper = Scraper(f"http://127.0.0.1:{port}/metrics")
        deadline = time.monotonic() + 30
        while True:
            try:
                scraper.scrape()
                break
            except OSError:
                assert time.monotonic() < deadline, "mover metrics did not answer"
                time.sleep(0.2)
        src = work / "large.bin"
        random_file(src, size)
        warm(src)
        times: dict[str, list[float]] = {"plain": [], "scraped": []}
        cpu = {"plain": 0.0, "scraped": 0.0}  # the monitor's CPU seconds during the copies
        wall = {"plain": 0.0, "scraped": 0.0}
        for run in range(args.runs):
            for mode in ("plain", "scraped") if run % 2 == 0 else ("scraped", "plain"):
                dst = work / f"out-{mode}-{run}.bin"
                cpu_before = cpu_seconds(metrics.pid)
                if mode == "scraped":
                    scraper.on.set()
                seconds = mover_copy(st, "fleet", src, str(dst), ["--chunk-size", args.chunk_size])
                scraper.on.clear()
                cpu[mode] += cpu_seconds(metrics.pid) - cpu_before
                wall[mode] += seconds
                times[mode].append(seconds)
                dst.unlink()
                print(f"  {mode:<8} run {run + 1}: {seconds:.2f} s", flush=True)
        d = scraper.durations
        plain, scraped = statistics.median(times["plain"]), statistics.median(times["scraped"])
        scrape_cost = cpu["scraped"] / wall["scraped"] - cpu["plain"] / wall["plain"]
        lines = [
            f"# bench_metrics: {args.size_mib} MiB file -> file on the fleet (2 workers, -c 2), "
            f"chunks {args.chunk_size}, {args.runs} runs each; load {st.load_start} -> {loadavg()}",
            "",
            "| figure | value | target |",
            "| --- | --- | --- |",
            f"| copy, no scrape (median) | {plain:.2f} s | |",
            f"| copy, scraped every 1 s (median) | {scraped:.2f} s | |",
            f"| end to end: scraped / plain - 1 | {100 * (scraped / plain - 1):+.1f} % "
            "| < 2 % (noisy) |",
            f"| scrapes during the copies | {len(d)} ({scraper.failures} failed) | |",
            f"| one scrape: median / max | {1000 * statistics.median(d):.1f} ms / "
            f"{1000 * max(d):.1f} ms | |",
            f"| monitor CPU / copy time, not scraped (workers' inspect) | "
            f"{100 * cpu['plain'] / wall['plain']:.2f} % | |",
            f"| monitor CPU / copy time, scraped every 1 s | "
            f"{100 * cpu['scraped'] / wall['scraped']:.2f} % | |",
            f"| scrape cost: the difference | {100 * scrape_cost:.2f} % "
            f"| < 2 % {'met' if scrape_cost < 0.02 else 'NOT met'} |",
            f"| scrapes' wall time / copy time (upper bound) | "
            f"{100 * sum(d) / wall['scraped']:.2f} % | |",
        ]
        report = "\n".join(lines)
        print("\n" + report)
        if args.save:
            args.save.write_text(report + "\n")
    finally:
        if scraper is not None:
            scraper.stop.set()
        if metrics is not None:
            metrics.terminate()
            metrics.wait(10)
        stop_workers(st)
        redis.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
