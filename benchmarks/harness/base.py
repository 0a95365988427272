"""Sizes, defaults and the benchmark's own error, shared by every harness module."""

from __future__ import annotations

from pathlib import Path

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: The repository this benchmark belongs to (tests/servers.py lives there).
REPO = Path(__file__).resolve().parents[2]
#: Sub-folders the small files are spread over.
SMALL_FOLDERS = 20
#: Size of each small file.
SMALL_FILE_BYTES = 16 * KiB
#: Slack over chunk size x streams that mover's peak RSS may use (interpreter, libraries).
RSS_SLACK_BYTES = 100 * MiB
#: Bytes written or read per call while making or warming data (keeps our own memory small).
WRITE_SLICE_BYTES = 4 * MiB
#: rclone remote names; remotes come from environment variables, no config file.
RCLONE_S3 = "bs3"
RCLONE_SWIFT = "bsw"
#: Default sizes: the issue's target table, and the ``--quick`` developer run.
FULL_LARGE_BYTES = 1 * GiB
FULL_SMALL_FILES = 2000
QUICK_LARGE_BYTES = 256 * MiB
QUICK_SMALL_FILES = 300
#: Peers a ``--quick`` run leaves out: the slowest to run, and never the fastest peer here.
QUICK_LEAVES_OUT = ("boto3", "aws")


class BenchError(RuntimeError):
    """Raised when a tool fails or copies something other than its source."""


def human(n: float) -> str:
    """A byte count (or a rate's bytes) in the largest binary unit under 1024: ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)
