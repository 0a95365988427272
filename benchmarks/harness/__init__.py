"""The one harness every benchmark script uses: data, runs, timing, servers, peers, report.

A benchmark script describes *cases* (what to copy, the tools that copy it, how to check and
clean a destination) and *targets* (which ratio a case must reach against which peers); this
module does the rest the same way for every script:

* **data**: a large random file and a tree of small random files (:func:`write_random`,
  :func:`make_tree`), read once before timing so every tool starts with a warm page cache
  (:func:`warm`);
* **runs**: every tool of a case runs ``rounds`` times, interleaved round by round with the
  order rotated, so that a slow spell of the shared machine hits every tool alike; each run
  writes to a fresh destination (a new key prefix or folder: rclone cannot skip anything) after
  an untimed ``sync`` that flushes what earlier runs left dirty (:func:`run_case`);
* **timing**: wall clock, client CPU and peak RSS of the program from ``os.wait4`` (of that one
  child), and the CPU the local servers spent meanwhile (:func:`run_measured`);
* **``+sync``**: mover fsyncs what it writes; ``cp``, ``rclone``, ``s5cmd``, boto3, the aws and
  swift CLIs do not (checked with strace). A peer that writes local files is therefore timed
  twice: at its exit, and with a ``sync -f DST`` (syncfs of the destination's file system) that
  follows; the ``+sync`` row is the like-for-like one that download targets name;
* **servers**: SeaweedFS (S3), Swift and Redis from ``tests/servers.py`` on free ports, started
  once per :class:`Bench` and stopped by PID at the end, also on error, Ctrl-C or SIGTERM;
* **peers**: the environment of rclone (remotes from variables, no config file), s5cmd, the aws
  CLI and the swift CLI for those servers (:meth:`S3Side.env`, :meth:`SwiftSide.env`);
* **report**: a detail table per group of cases, and one target table whose rows read
  ``case  mover  peer  ratio  target  met/missed`` (a miss with its cause when known), each
  printed with the load average (:func:`print_details`, :func:`print_targets`).

Ratios are peer seconds / mover seconds of the *best* run of each tool (best of the warm
rounds, as issue 10 asks); the detail table shows the median and every run beside it.

Standard library only at import time; boto3 and swiftclient are imported by the server sides.
One module per concern: ``base`` (sizes, defaults, BenchError), ``host`` (programs, load,
revision), ``data``, ``runs`` (measuring and running cases), ``report`` (targets, tables),
``stores`` (S3 and Swift from the benchmark's side), ``peers`` (each peer's command), ``bench``
(one run: options, servers, work folder), ``fleet`` (``mover worker`` processes on the
bench's Redis). Scripts use the names re-exported here: ``import harness as h``.
"""

from __future__ import annotations

from .base import (
    FULL_LARGE_BYTES,
    FULL_SMALL_FILES,
    QUICK_LARGE_BYTES,
    QUICK_LEAVES_OUT,
    QUICK_SMALL_FILES,
    RCLONE_S3,
    RCLONE_SWIFT,
    REPO,
    RSS_SLACK_BYTES,
    SMALL_FILE_BYTES,
    SMALL_FOLDERS,
    WRITE_SLICE_BYTES,
    BenchError,
    GiB,
    KiB,
    MiB,
    human,
)
from .bench import PROGRAMS, Bench, add_common_args, parser, run_bench, run_script
from .data import make_tree, same_content, tree_files, tree_shape, warm, write_random
from .fleet import WORKER_QUEUES, Fleet, stop_groups
from .host import find_program, fs_type, git_revision, load_average, parse_size, version
from .peers import Loc, fresh, from_local, peer_argv, total_of, transfer_case
from .report import Row, Target, judge, limit_row, print_details, print_targets, rss_row
from .runs import Case, CaseResult, Measure, Tool, Usage, process_cpu, run, run_case, run_measured
from .stores import S3Side, SwiftSide

__all__ = [
    "FULL_LARGE_BYTES",
    "FULL_SMALL_FILES",
    "PROGRAMS",
    "QUICK_LARGE_BYTES",
    "QUICK_LEAVES_OUT",
    "QUICK_SMALL_FILES",
    "RCLONE_S3",
    "RCLONE_SWIFT",
    "REPO",
    "RSS_SLACK_BYTES",
    "SMALL_FILE_BYTES",
    "SMALL_FOLDERS",
    "WORKER_QUEUES",
    "WRITE_SLICE_BYTES",
    "Bench",
    "BenchError",
    "Case",
    "CaseResult",
    "Fleet",
    "GiB",
    "KiB",
    "Loc",
    "Measure",
    "MiB",
    "Row",
    "S3Side",
    "SwiftSide",
    "Target",
    "Tool",
    "Usage",
    "add_common_args",
    "find_program",
    "fresh",
    "from_local",
    "fs_type",
    "git_revision",
    "human",
    "judge",
    "limit_row",
    "load_average",
    "make_tree",
    "parse_size",
    "parser",
    "peer_argv",
    "print_details",
    "print_targets",
    "process_cpu",
    "rss_row",
    "run",
    "run_bench",
    "run_case",
    "run_measured",
    "run_script",
    "same_content",
    "stop_groups",
    "total_of",
    "transfer_case",
    "tree_files",
    "tree_shape",
    "version",
    "warm",
    "write_random",
]
