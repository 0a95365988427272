#!/usr/bin/env python3
"""Local benchmark: ``mover copy`` against ``cp`` and ``rclone``, file to file on one file system.

Cases (built by :func:`cases`, run by the shared harness, ``benchmarks/harness/``):

* ``file-large``: one random file (1 GiB; 256 MiB with ``--quick``) copied file to file;
  target (issue 10) >= 0.9x ``cp``+sync;
* ``file-small``: a folder of 2,000 random 16 KiB files (300 with ``--quick``) in 20
  sub-folders, copied recursively; target (issue 2) >= 1.0x ``rclone``+sync;
* ``file-tiny``: a 1-byte file, the fixed cost of a ``mover copy`` (start-up, job record,
  fsync); no target, for reference.

Why "+sync" rows: mover fsyncs every file it commits (and its folder), so its time includes
getting the bytes to disk; ``cp`` and ``rclone`` (checked with strace: no fsync, fdatasync or
syncfs) leave them dirty in the page cache. Each peer run is therefore also timed with a
``sync -f DST`` that follows it; the "+sync" figure is the fair one and the targets name it.

    .venv/bin/python benchmarks/bench_local.py                 # 1 GiB file, 2,000 x 16 KiB
    .venv/bin/python benchmarks/bench_local.py --quick         # 256 MiB, 300 files, 1 round
    .venv/bin/python benchmarks/bench_local.py --dir /mnt/nfs  # another file system
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness/, beside this file
import harness as h

# Names this script exported before the harness existed, kept importable from here.
from harness import (  # noqa: F401
    BenchError,
    Case,
    Measure,
    Usage,
    find_program,
    fs_type,
    load_average,
    run_measured,
    same_content,
    tree_shape,
    warm,
    write_random,
)

#: The peers of every case (each case keeps those that are installed).
PEERS = ("cp", "rclone")
#: Targets, as peer seconds / mover seconds of the best rounds.
TARGETS = (
    h.Target(
        "file-large",
        ("cp+sync",),
        0.9,
        cause="mover pays its start-up (the 1 B row) and reads back what it wrote to verify it",
    ),
    h.Target("file-small", ("rclone+sync",), 1.0, source="issue 2"),
)


def cases(bench: h.Bench) -> list[h.Case]:
    """The local cases with their tools: mover, cp and rclone (when installed)."""
    return [
        h.from_local(bench, "large", "file-large", "file", bench.fresh_local("copy.bin"), PEERS),
        h.from_local(bench, "tree", "file-small", "folder", bench.fresh_local("tree"), PEERS),
        h.from_local(bench, "tiny", "file-tiny", "file", bench.fresh_local("tiny.bin"), ()),
    ]


def rows(bench: h.Bench, results: dict[str, h.CaseResult]) -> list[h.Row]:
    """This script's target rows."""
    return [h.judge(t, results) for t in TARGETS]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return h.parser(__doc__).parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return h.run_script(parse_args(argv), "mover local benchmark", cases, rows)


if __name__ == "__main__":
    sys.exit(main())
