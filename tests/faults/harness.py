"""The fault suite's bookkeeping and judgement: the seed, one record per fault, the verdict and
the table.

Every fault ends in exactly one of three outcomes:

done-and-verified
    the job is recorded ``done`` and an independent reader (hashlib over the file, boto3's own
    GET, swiftclient's own GET; never a digest mover computed) finds bytes identical to one
    consistent version of the source, with nothing of the job left behind (no temporary file,
    no multipart upload, no segment the object does not use);
failed-and-clean
    the job is recorded ``failed`` or ``cancelled`` with a one-line error, no object is visible
    at the destination, nothing of it is left behind, and the command line (when it ran to its
    end) exited non-zero without a traceback;
bad
    anything else: done with wrong bytes, failed with a partial object or leftovers, a job that
    never settles, a traceback. Each bad fault is listed with its parameters, so that it can be
    replayed with the same seed.

A fault that could not be injected (the job was over before the harness struck) is *missed*:
it is counted apart and never as a success.

Randomness: one seed per run (``MOVER_FAULT_SEED``, else drawn), and one generator per fault
seeded from (seed, family, index), so that one fault replays alone (``-k``) exactly as in the
full run. ``MOVER_FAULT_QUICK=1`` runs fewer faults per family.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

MiB = 1 << 20

DONE_OK = "done-and-verified"
CLEAN = "failed-and-clean"
BAD = "bad"
MISSED = "missed"

#: How a note of a job the harness had to resume because it did not settle begins.
STUCK = "stuck"
#: Seconds leftovers get to disappear after a job settled before they count.
LEFTOVER_GRACE_S = 10.0
#: Fewest faults a full run of every family must inject.
MIN_FAULTS = 100


def _seed() -> int:
    raw = os.environ.get("MOVER_FAULT_SEED", "").strip()
    return int(raw) if raw else random.SystemRandom().randrange(1, 2**31)


SEED = _seed()
QUICK = os.environ.get("MOVER_FAULT_QUICK", "").strip() not in ("", "0")


def count(full: int, quick: int) -> int:
    """Faults of a family in this run: ``full`` normally, ``quick`` with MOVER_FAULT_QUICK."""
    return quick if QUICK else full


def kind_of(kinds: list[Any], index: int, cases: int) -> Any:
    """The kind of fault ``index`` of ``cases``: every kind in turn, or spread evenly over
    the kinds when a quick run has fewer cases than kinds."""
    if cases >= len(kinds):
        return kinds[index % len(kinds)]
    return kinds[index * len(kinds) // cases]


def case_ids(family_kinds: list[Any], cases: int) -> list[str]:
    """Test ids that name each case's kind, so that ``-k flip`` selects by kind."""
    return [f"{'-'.join(kind_of(family_kinds, i, cases))}-{i:02d}" for i in range(cases)]


def rng(family: str, index: int) -> random.Random:
    """The generator of one fault: the same for the same seed, whatever else runs."""
    return random.Random(f"{SEED}:{family}:{index}")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str | None:
    """sha256 of a file read here, or None when it does not exist."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(4 * MiB):
                h.update(block)
    except FileNotFoundError:
        return None
    return h.hexdigest()


def wait_until(predicate: Callable[[], Any], timeout_s: float, poll_s: float = 0.02) -> Any:
    """The first true value of ``predicate`` within ``timeout_s``, else None."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(poll_s)


# -- destinations, read by independent clients ---------------------------------------------


class Destination(Protocol):
    """Where a job writes, as the harness sees it with its own client."""

    url: str

    def sha256(self) -> str | None:
        """sha256 of the object read with a client mover does not use, None when absent."""

    def leftovers(self) -> list[str]:
        """What the job left behind besides the object itself."""


def temp_files(folder: Path) -> list[str]:
    """mover's temporary files (``.<name>.mover-<tag>.part``) anywhere under ``folder``."""
    if not folder.exists():
        return []
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if ".mover-" in p.name and p.name.endswith(".part")
    )


@dataclass
class FileDest:
    path: Path

    @property
    def url(self) -> str:
        return str(self.path)

    def sha256(self) -> str | None:
        return sha256_file(self.path)

    def leftovers(self) -> list[str]:
        return [f"temporary file {name}" for name in temp_files(self.path.parent)]


@dataclass
class S3Dest:
    """An object in a bucket, read with a boto3 client on the real endpoint (not the proxy)."""

    client: Any
    bucket: str
    key: str
    url: str

    def sha256(self) -> str | None:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        h = hashlib.sha256()
        for block in body.iter_chunks(4 * MiB):
            h.update(block)
        return h.hexdigest()

    def leftovers(self) -> list[str]:
        answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.key)
        return [
            f"multipart upload {u['UploadId'][:16]} of {u['Key']}"
            for u in answer.get("Uploads", []) or []
            if u["Key"] == self.key
        ]


@dataclass
class SwiftDest:
    """An object in a container, read with its own swiftclient connection to the real proxy."""

    conn: Any
    container: str
    name: str
    url: str

    def sha256(self) -> str | None:
        from swiftclient.exceptions import ClientException

        try:
            _, body = self.conn.get_object(self.container, self.name, resp_chunk_size=4 * MiB)
        except ClientException as exc:
            if exc.http_status == 404:
                return None
            raise
        h = hashlib.sha256()
        for block in body:
            h.update(block)
        return h.hexdigest()

    def _manifest_segments(self) -> set[str]:
        from swiftclient.exceptions import ClientException

        try:
            headers, body = self.conn.get_object(
                self.container, self.name, query_string="multipart-manifest=get"
            )
        except ClientException as exc:
            if exc.http_status == 404:
                return set()
            raise
        if headers.get("x-static-large-object", "").lower() != "true":
            return set()
        return {s["name"].lstrip("/") for s in json.loads(body)}

    def leftovers(self) -> list[str]:
        from swiftclient.exceptions import ClientException

        segments = f"{self.container}_segments"
        try:
            _, listing = self.conn.get_container(
                segments, prefix=f"{self.name}/", full_listing=True
            )
        except ClientException as exc:
            if exc.http_status == 404:
                return []
            raise
        used = self._manifest_segments()
        left = [
            f"segment {segments}/{o['name']}"
            for o in listing
            if f"{segments}/{o['name']}" not in used
        ]
        if left:
            # Say whether they are bounded (X-Delete-At): kept for a resume, they would still
            # be leftovers here, but the report should tell the two apart.
            first = left[0].split("/", 1)[1]
            with contextlib.suppress(ClientException):
                expires = self.conn.head_object(segments, first).get("x-delete-at")
                if expires:
                    left[0] += f" (expires at {expires})"
        return left


# -- one fault ------------------------------------------------------------------------------


@dataclass
class Fault:
    """One injected fault (or a few in one job): what was done, and how it ended."""

    family: str
    case: str
    params: dict[str, Any] = field(default_factory=dict)
    injected: int = 0
    outcome: str | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        text = f"[{self.family}] {self.case} ({params})"
        if self.problems:
            text += ": " + "; ".join(self.problems)
        return text


@dataclass
class Verdict:
    """The job as recorded and the command-line runs that drove it, for :func:`judge`."""

    state: str | None
    error: str | None = None
    runs: list[Any] = field(default_factory=list)  # CompletedProcess of mover commands


def one_line(text: str | None) -> bool:
    return bool(text and text.strip() and "\n" not in text.strip())


def judge(
    fault: Fault,
    verdict: Verdict,
    dest: Destination,
    versions: dict[str, str],
    step: str = "",
) -> None:
    """Decide ``fault.outcome`` from the job's record and what an independent reader finds.

    ``versions`` maps a label (``original``, ``changed``...) to the sha256 of a consistent
    version of the source: a done job must hold exactly one of them. Called once per step
    when the harness resumes a job (``step`` names the earlier one, e.g. "before resume"):
    every step must be good, and the last decides between done and failed.
    """
    problems: list[str] = []
    got = dest.sha256()
    left = dest.leftovers()
    if left:
        # A clean-up that runs just after the job's end (a retried abort) gets a moment.
        gone = wait_until(lambda: not dest.leftovers(), LEFTOVER_GRACE_S, 0.5)
        left = [] if gone else dest.leftovers()
    for run in verdict.runs:
        if "Traceback (most recent call last)" in (run.stderr or ""):
            tail = run.stderr.strip().splitlines()[-1][:200]
            problems.append(f"`mover {' '.join(run.args[3:5])}` printed a traceback ({tail})")
    last = verdict.runs[-1] if verdict.runs else None
    if verdict.state == "done":
        if got is None:
            problems.append("recorded done, but nothing at the destination")
        elif got not in versions.values():
            problems.append(
                f"recorded done, but the destination (sha256 {got[:16]}) matches no version "
                f"of the source ({', '.join(f'{k} {v[:16]}' for k, v in versions.items())})"
            )
        elif len(versions) > 1:
            fault.notes.append(
                "holds the " + next(k for k, v in versions.items() if v == got) + " version"
            )
        if last is not None and last.returncode not in (0, None):
            said = (getattr(last, "stderr", "") or "").strip().splitlines()[-1:] or [""]
            problems.append(
                f"recorded done, but the command exited {last.returncode} ({said[0][:300]})"
            )
        outcome = DONE_OK
    elif verdict.state in ("failed", "cancelled"):
        if got is not None:
            same = [k for k, v in versions.items() if v == got]
            problems.append(
                f"recorded {verdict.state}, but an object is visible at the destination "
                f"({'identical to the ' + same[0] if same else 'partial or mixed'})"
            )
        if not one_line(verdict.error):
            problems.append(f"recorded {verdict.state} without a one-line error: {verdict.error!r}")
        if last is not None and last.returncode == 0:
            problems.append(f"recorded {verdict.state}, but the command exited 0")
        outcome = CLEAN
    else:
        problems.append(f"the job never settled: still {verdict.state}")
        outcome = BAD
    if left:
        problems.append("left behind: " + ", ".join(left[:6]) + (" ..." if len(left) > 6 else ""))
    fault.problems.extend(f"{step}: {p}" if step else p for p in problems)
    fault.outcome = BAD if fault.problems else outcome


# -- the ledger and its table ---------------------------------------------------------------


FAMILY_ORDER = (
    "worker_kill",
    "redis",
    "s3_proxy",
    "swift",
    "disk_full",
    "source_change",
    "cli_kill",
    "snapshot_kill",
)


@dataclass
class Ledger:
    """Every fault of the session, for the table and the report file."""

    faults: list[Fault] = field(default_factory=list)
    planned: dict[str, int] = field(default_factory=dict)

    def add(self, fault: Fault) -> None:
        self.faults.append(fault)

    def rows(self) -> list[tuple[str, int, int, int, int]]:
        families = [f for f in FAMILY_ORDER if any(x.family == f for x in self.faults)]
        families += sorted({x.family for x in self.faults} - set(families))
        rows = []
        for family in families:
            mine = [x for x in self.faults if x.family == family and x.outcome != MISSED]
            rows.append(
                (
                    family,
                    sum(x.injected for x in mine),
                    sum(x.injected for x in mine if x.outcome == DONE_OK),
                    sum(x.injected for x in mine if x.outcome == CLEAN),
                    sum(x.injected for x in mine if x.outcome == BAD),
                )
            )
        return rows

    def totals(self) -> tuple[int, int, int, int]:
        rows = self.rows()
        return (
            sum(r[1] for r in rows),
            sum(r[2] for r in rows),
            sum(r[3] for r in rows),
            sum(r[4] for r in rows),
        )

    def bad(self) -> list[Fault]:
        return [x for x in self.faults if x.outcome == BAD]

    def table(self) -> str:
        header = "| family | injected | done-and-verified | failed-and-clean | bad |"
        lines = [header, "| --- | --- | --- | --- | --- |"]
        for family, injected, done, clean, bad in self.rows():
            lines.append(f"| {family} | {injected} | {done} | {clean} | {bad} |")
        t = self.totals()
        lines.append(f"| **total** | {t[0]} | {t[1]} | {t[2]} | {t[3]} |")
        return "\n".join(lines)

    def report(self) -> str:
        """The table with its seed, the missed faults and every bad one, as text."""
        mode = "quick" if QUICK else "full"
        jobs = len([x for x in self.faults if x.outcome != MISSED])
        out = [
            f"fault suite: seed {SEED} ({mode} run; replay with MOVER_FAULT_SEED={SEED}), "
            f"{jobs} jobs",
            "",
            self.table(),
        ]
        missed = [x for x in self.faults if x.outcome == MISSED]
        if missed:
            out += ["", f"missed (the job ended before the fault could land): {len(missed)}"]
            out += [f"  {x.describe()}" for x in missed]
        resumed = [x for x in self.faults if any(n.startswith(STUCK) for n in x.notes)]
        if resumed:
            out += ["", f"ended only after the harness ran `mover resume`: {len(resumed)}"]
            out += [f"  {x.family} {x.case}: {'; '.join(x.notes)}" for x in resumed]
        bad = self.bad()
        if bad:
            out += ["", f"BAD outcomes: {len(bad)}"]
            out += [f"  {x.describe()}" for x in bad]
        return "\n".join(out)

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        text = folder / "faults-table.md"
        text.write_text(self.report() + "\n")
        data = [
            {
                "family": x.family,
                "case": x.case,
                "params": x.params,
                "injected": x.injected,
                "outcome": x.outcome,
                "problems": x.problems,
                "notes": x.notes,
                "seconds": round(x.seconds, 2),
            }
            for x in self.faults
        ]
        (folder / "faults.json").write_text(json.dumps({"seed": SEED, "faults": data}, indent=1))
        return text


LEDGER = Ledger()


def replay_hint(nodeid: str) -> str:
    name = nodeid.split("::")[-1]
    return f"MOVER_FAULT_SEED={SEED} python -m pytest tests/faults -k '{name}'"


def conclude(fault: Fault, nodeid: str) -> None:
    """Fail the test of a bad fault, naming its parameters, what was wrong and how to replay
    it; a missed fault passes (it is counted apart)."""
    import pytest

    assert fault.outcome is not None, "the test did not judge its fault"
    if fault.outcome == BAD:
        pytest.fail(f"{fault.describe()}\nreplay: {replay_hint(nodeid)}", pytrace=False)
