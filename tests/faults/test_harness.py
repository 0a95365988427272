"""The fault suite's judge on its own (fast, no server): each way a job can end is sorted into
the outcome the README promises, so that a bad outcome cannot pass as a good one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.faults.harness import (
    BAD,
    CLEAN,
    DONE_OK,
    Fault,
    FileDest,
    Verdict,
    judge,
    kind_of,
    rng,
    sha256_bytes,
)

SOURCE = b"the source bytes" * 1000
VERSIONS = {"source": sha256_bytes(SOURCE)}


@pytest.fixture(autouse=True)
def _no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leftovers here never go away by themselves: no need to give them time."""
    from tests.faults import harness

    monkeypatch.setattr(harness, "LEFTOVER_GRACE_S", 0.1)


def _judge(folder: Path, state: str | None, content: bytes | None, **kw: object) -> Fault:
    dest = FileDest(folder / "copy.bin")
    if content is not None:
        dest.path.write_bytes(content)
    fault = Fault("test", "case")
    judge(fault, Verdict(state, **kw), dest, VERSIONS)  # type: ignore[arg-type]
    return fault


def _cli(code: int, stderr: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(
        ["python", "-m", "mover.cli.main", "copy", "a"], code, "", stderr
    )


def test_done_and_identical_is_done(tmp_path: Path) -> None:
    fault = _judge(tmp_path, "done", SOURCE, runs=[_cli(0)])
    assert fault.outcome == DONE_OK and not fault.problems


@pytest.mark.parametrize(
    "content, expect",
    [
        (SOURCE[:-1] + b"X", "matches no version"),
        (None, "nothing at the destination"),
    ],
    ids=["other-bytes", "missing"],
)
def test_done_with_other_bytes_is_bad(tmp_path: Path, content: bytes | None, expect: str) -> None:
    fault = _judge(tmp_path, "done", content)
    assert fault.outcome == BAD and expect in fault.problems[0]


def test_failed_and_clean_is_clean(tmp_path: Path) -> None:
    fault = _judge(tmp_path, "failed", None, error="disk full", runs=[_cli(1, "mover: disk full")])
    assert fault.outcome == CLEAN, fault.problems


@pytest.mark.parametrize(
    "content, error, runs, expect",
    [
        (SOURCE[:100], "x", [], "object is visible"),
        (None, "line one\nline two", [], "one-line error"),
        (None, "", [], "one-line error"),
        (None, "x", [_cli(0)], "exited 0"),
        (None, "x", [_cli(1, "Traceback (most recent call last):\n  boom")], "traceback"),
    ],
    ids=["partial-object", "two-lines", "no-error", "exit-0", "traceback"],
)
def test_failed_but_not_clean_is_bad(
    tmp_path: Path, content: bytes | None, error: str, runs: list, expect: str
) -> None:
    fault = _judge(tmp_path, "failed", content, error=error, runs=runs)
    assert fault.outcome == BAD and any(expect in p for p in fault.problems), fault.problems


def test_leftover_temporary_file_is_bad_even_when_done(tmp_path: Path) -> None:
    (tmp_path / ".copy.bin.mover-1a-0.part").write_bytes(b"partial")
    fault = _judge(tmp_path, "done", SOURCE)
    assert fault.outcome == BAD and "temporary file" in fault.problems[0]


def test_unsettled_job_is_bad(tmp_path: Path) -> None:
    fault = _judge(tmp_path, "running", None)
    assert fault.outcome == BAD and "never settled" in fault.problems[0]


def test_a_bad_step_before_a_resume_stays_bad(tmp_path: Path) -> None:
    dest = FileDest(tmp_path / "copy.bin")
    fault = Fault("test", "case")
    (tmp_path / ".copy.bin.mover-1a-0.part").write_bytes(b"partial")
    judge(fault, Verdict("failed", "x"), dest, VERSIONS, step="before resume")
    (tmp_path / ".copy.bin.mover-1a-0.part").unlink()
    dest.path.write_bytes(SOURCE)
    judge(fault, Verdict("done"), dest, VERSIONS)
    assert fault.outcome == BAD and fault.problems[0].startswith("before resume: ")


def test_generators_replay_and_kinds_cover() -> None:
    assert rng("f", 3).random() == rng("f", 3).random() != rng("f", 4).random()
    kinds = ["a", "b", "c", "d"]
    assert [kind_of(kinds, i, 2) for i in range(2)] == ["a", "c"]
    assert [kind_of(kinds, i, 6) for i in range(6)] == ["a", "b", "c", "d", "a", "b"]
