"""Targets and the report: ``case  mover  peer  ratio  target  met/missed``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from .base import RSS_SLACK_BYTES, MiB
from .host import load_average
from .runs import CaseResult

#: The verdict of a target whose case did not run (``--only``): left out of the table.
NOT_RUN = "skipped: case not run"


@dataclass(frozen=True)
class Target:
    """A ratio a case must reach: ``subject`` against the fastest of ``peers`` that ran.

    Attributes:
        case: the case key.
        peers: peer rows (``s5cmd+sync``); the ratio is taken against the fastest present.
        min_ratio: peer seconds / subject seconds must be at least this (best runs).
        subject: the row judged (``mover``; ``fleet`` on the fleet cases).
        cause: what is known to cause a miss (printed beside a miss with the measured CPU).
        source: which issue set the target.
    """

    case: str
    peers: tuple[str, ...]
    min_ratio: float
    subject: str = "mover"
    cause: str = ""
    source: str = "issue 10"

    def label(self) -> str:
        who = self.peers[0] if len(self.peers) == 1 else "best of " + ", ".join(self.peers)
        return f">= {self.min_ratio:g}x {who}"


@dataclass(frozen=True)
class Row:
    """One line of the target table: ``case  mover  peer  ratio  target  met/missed``."""

    case: str
    mover: str
    peer: str
    ratio: str
    target: str
    verdict: str  #: ``met``, ``MISSED: cause`` or ``skipped: why``


def judge(target: Target, results: dict[str, CaseResult]) -> Row:
    """The row of one target from the measured cases."""
    res = results.get(target.case)
    if res is None or target.subject not in res:
        return Row(target.case, "-", "-", "-", target.label(), NOT_RUN)
    subject = res[target.subject]
    label = subject.case.label
    if not subject.seconds:
        cause = subject.failures[0].splitlines()[0][-300:] if subject.failures else "no run"
        return Row(label, "failed", "-", "-", target.label(), f"MISSED: every run failed: {cause}")
    present = [res[p] for p in target.peers if p in res and res[p].seconds]
    if not present:
        return Row(
            label,
            subject.speed(),
            "-",
            "-",
            target.label(),
            f"skipped: {', '.join(target.peers)} not installed",
        )
    peer = min(present, key=lambda m: m.best)
    ratio = peer.best / subject.best if subject.best > 0 else float("inf")
    name = f"{subject.tool} " if target.subject != "mover" else ""
    failed = f" ({len(subject.failures)} run(s) failed)" if subject.failures else ""
    if ratio >= target.min_ratio:
        verdict = "met" + failed
    else:
        measured = f"CPU {subject.tool} {subject.cpu:.2f} s vs {peer.tool} {peer.cpu:.2f} s"
        if subject.server == subject.server:  # not NaN: the servers are ours
            measured += f", servers {subject.server:.2f} s vs {peer.server:.2f} s"
        verdict = "MISSED: " + "; ".join(x for x in (target.cause, measured) if x) + failed
    return Row(
        label,
        name + subject.speed(),
        f"{peer.tool} {peer.speed()}",
        f"{ratio:.2f}x",
        target.label(),
        verdict,
    )


def _fmt_num(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"  # NaN is the only value unequal to itself


def limit_row(case_label: str, figure: str, ok: bool | None, target: str, cause: str = "") -> Row:
    """A row with an absolute target (seconds, bytes, tasks/s): no peer, no ratio."""
    if ok is None:
        verdict = "skipped: not measured"
    else:
        verdict = "met" if ok else "MISSED" + (f": {cause}" if cause else "")
    return Row(case_label, figure, "-", "-", target, verdict)


def rss_row(results: dict[str, CaseResult], chunk: int, streams: int) -> Row:
    """Peak RSS of every mover run against chunk size x streams + 100 MiB (one row)."""
    bound = chunk * streams + RSS_SLACK_BYTES
    peak, where = 0, "-"
    for res in results.values():
        for m in res.values():
            is_mover = any(t.name == m.tool and t.mover for t in m.case.tools)
            if is_mover and m.rss_peak > peak:
                peak, where = m.rss_peak, f"{m.tool} on {m.case.label}"
    target = f"<= {chunk // MiB} MiB x {streams} + {RSS_SLACK_BYTES // MiB} MiB"
    if not peak:
        return limit_row("peak RSS of a copy", "-", None, target)
    return limit_row(
        "peak RSS of a copy", f"{peak / MiB:,.0f} MiB ({where})", peak <= bound, target
    )


def print_details(results: dict[str, CaseResult], title: str, out: TextIO | None = None) -> None:
    """Every tool of every case: best and median seconds, speed, CPU, server CPU, RSS, runs."""
    out = out or sys.stdout  # at call time: --save replaces sys.stdout after import
    print(f"\n{title} (load average {load_average()})", file=out)
    head = (
        f"{'case':<26} {'tool':<16} {'best s':>8} {'median':>8} {'speed (best)':>16} "
        f"{'cpu s':>6} {'srv cpu':>7} {'RSS MiB':>7}  runs (s)"
    )
    print(head, file=out)
    print("-" * len(head), file=out)
    for res in results.values():
        for name, m in res.items():
            runs = " ".join(f"{s:.3f}" for s in m.seconds)
            if m.failures:
                runs += f" (+{len(m.failures)} failed: {m.failures[0].splitlines()[0][-160:]})"
            print(
                f"{m.case.label:<26} {name:<16} {m.best:>8.3f} {m.median:>8.3f} "
                f"{m.speed():>16} {m.cpu:>6.2f} {_fmt_num(m.server):>7} "
                f"{m.rss_peak / MiB:>7.0f}  {runs}",
                file=out,
            )
    print(
        "best s / median: wall clock of the whole program, best and median of the rounds; "
        "cpu s: median user+system\nseconds of the client; srv cpu: median CPU seconds of the "
        "local servers during the run (same cores);\nRSS: the client's largest peak; "
        "NAME+sync: the peer's run plus a `sync -f` of its destination (mover fsyncs).",
        file=out,
    )


#: What the ratio column of the peer comparisons means (the default note under the table).
RATIO_NOTE = (
    "ratio: peer seconds / mover seconds of the best warm round of each (> 1: mover is "
    "faster); a peer's +sync\nrow includes a `sync -f` of what it wrote (mover fsyncs, "
    "peers do not)."
)


def print_targets(
    rows: Sequence[Row], title: str, out: TextIO | None = None, note: str = RATIO_NOTE
) -> None:
    """The target table: ``case  mover  peer  ratio  target  met/missed``, then ``note`` (what
    the script's ratios are; a script whose ratio is not peer / mover says its own)."""
    out = out or sys.stdout
    print(f"\n{title} (load average {load_average()})", file=out)
    rows = [r for r in rows if r.verdict != NOT_RUN]  # --only left the case out
    widths = [
        max(len(getattr(r, f)) for r in [*rows, _HEADER])
        for f in ("case", "mover", "peer", "ratio", "target")
    ]
    for r in [_HEADER, *rows]:
        cells = (r.case, r.mover, r.peer, r.ratio, r.target)
        line = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        print(f"{line}  {r.verdict}", file=out)
    if note:
        print(note, file=out)


_HEADER = Row("case", "mover", "peer", "ratio", "target", "met/missed")
