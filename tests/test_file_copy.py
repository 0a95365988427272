"""The embedded path end to end on the file store: copies, bad input, faults, resume."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mover
from mover.errors import ChunkFailed, MoverError
from mover.jobstores.sqlite import SqliteJobStore
from mover.providers.posix import FileWriter, PosixProvider
from mover.resolve import providers

MOVER = [sys.executable, "-m", "mover.cli.main"]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
    return path


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".mover-" in p.name]


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MOVER, *args], input=stdin, capture_output=True, timeout=120, env=os.environ.copy()
    )


# -- copies ---------------------------------------------------------------------------------


def test_300_mib_random_file_is_identical(tmp_path: Path) -> None:
    src = random_file(tmp_path / "big.img", 300 * 1024 * 1024 + 123)
    job = mover.copy(str(src), str(tmp_path / "copy.img"), streams=4)
    assert job.state == "done"
    assert sha256(tmp_path / "copy.img") == sha256(src)
    assert job.digest and job.digest.endswith(f"-{len(job.items[0].chunks)}")
    assert not leftovers(tmp_path)


def test_300_mib_streaming_through_cli(tmp_path: Path) -> None:
    # file -> memory -> file exercises the generic streaming strategy with many parts.
    src = random_file(tmp_path / "big.img", 300 * 1024 * 1024)
    out = run_cli("copy", "--chunk-size", "16MiB", "--json", str(src), str(tmp_path / "c.img"))
    assert out.returncode == 0, out.stderr
    assert sha256(tmp_path / "c.img") == sha256(src)


def test_zero_byte_file(tmp_path: Path) -> None:
    src = tmp_path / "empty"
    src.write_bytes(b"")
    job = mover.copy(str(src), str(tmp_path / "empty.copy"))
    assert job.state == "done"
    assert (tmp_path / "empty.copy").read_bytes() == b""


def test_stdin_to_file_is_identical(tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 1)
    out = run_cli("copy", "-", str(tmp_path / "from-stdin"), stdin=data)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "from-stdin").read_bytes() == data
    assert b"single-stream" in out.stderr


def test_file_to_stdout(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    (tmp_path / "a").write_bytes(data)
    out = run_cli("copy", "-q", str(tmp_path / "a"), "-")
    assert out.returncode == 0, out.stderr
    assert out.stdout == data


def test_recursive_tree_of_2000_small_files(tmp_path: Path) -> None:
    src = tmp_path / "tree"
    for i in range(2000):
        folder = src / f"d{i % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}").write_bytes(os.urandom(16 * 1024))
    (src / "d0" / "empty").write_bytes(b"")
    out = run_cli("copy", "-r", "--json", str(src), str(tmp_path / "dst"))
    assert out.returncode == 0, out.stderr
    dst = tmp_path / "dst"
    got = {p.relative_to(dst): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    want = {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    assert len(want) == 2001
    assert got == want
    check = run_cli("check", "-r", str(src), str(tmp_path / "dst"))
    assert check.returncode == 0 and b"2001 matching, 0 differing" in check.stderr


def test_check_lists_differences(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "same").write_bytes(b"x" * 100)
    (tmp_path / "b" / "same").write_bytes(b"x" * 100)
    (tmp_path / "a" / "diff").write_bytes(b"x" * 100)
    (tmp_path / "b" / "diff").write_bytes(b"y" * 100)
    (tmp_path / "a" / "missing").write_bytes(b"z")
    out = run_cli("check", "-r", str(tmp_path / "a"), str(tmp_path / "b"))
    assert out.returncode == 1
    assert b"content differs: diff" in out.stdout
    assert b"missing in destination: missing" in out.stdout


def test_dry_run_moves_nothing(tmp_path: Path) -> None:
    random_file(tmp_path / "a", 1024)
    out = run_cli("copy", "--dry-run", str(tmp_path / "a"), str(tmp_path / "b"))
    assert out.returncode == 0
    assert b"local (OPTIMIZED)" in out.stdout and b"nothing moved" in out.stdout
    assert not (tmp_path / "b").exists()


def test_jobs_and_status_follow_a_job(tmp_path: Path) -> None:
    random_file(tmp_path / "a", 1024)
    out = run_cli("copy", "--json", str(tmp_path / "a"), str(tmp_path / "b"))
    import json

    job_id = json.loads(out.stdout)["id"]
    assert job_id.encode() in run_cli("jobs").stdout
    status = run_cli("status", job_id[:10])
    assert status.returncode == 0 and b"done" in status.stdout


# -- bad input: one clear line, an exit code, nothing left behind ----------------------------


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["{t}/missing", "{t}/x"], 1, b"no such file"),
        (["vendorq://b/k", "{t}/x"], 2, b"unknown provider 'vendorq'"),
        (["s3:/bucket/key", "{t}/x"], 2, b"malformed URL"),
        (["{t}/src", "{t}/no/such/folder/x"], 1, b"does not exist"),
        (["{t}/src", "{t}/src"], 1, b"same object"),
        (["{t}/src", "/proc/mover-cannot-write-here"], 1, b"/proc"),
        (["{t}/folder", "{t}/x"], 2, b"use --recursive"),
    ],
)
def test_bad_input(tmp_path: Path, args: list[str], code: int, words: bytes) -> None:
    (tmp_path / "src").write_bytes(b"data")
    (tmp_path / "folder").mkdir()
    out = run_cli("copy", *[a.format(t=tmp_path) for a in args])
    assert out.returncode == code, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(b"mover: ") and words in lines[0], lines
    assert b"Traceback" not in out.stderr
    assert not leftovers(tmp_path)


def test_key_escaping_a_store_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret").write_bytes(b"outside")
    os.symlink(tmp_path / "secret", root / "link")
    Path(os.environ["MOVER_CONFIG"]).write_text(f'[stores.images]\nurl = "file://{root}/"\n')
    out = run_cli("copy", "store:images/../secret", str(tmp_path / "x"))
    assert out.returncode == 1 and b"escapes the root" in out.stderr
    out = run_cli("copy", "store:images/link", str(tmp_path / "x"))
    assert out.returncode == 1 and b"outside the store root" in out.stderr
    assert not (tmp_path / "x").exists()


@pytest.fixture
def small_fs(tmp_path: Path):
    """A 4 MiB tmpfs: a real file system that runs out of space."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)])
    if res.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("cannot mount a tmpfs in CI")
        pytest.skip("mounting a tmpfs needs root")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_not_enough_space_is_refused_before_any_byte(tmp_path: Path, small_fs: Path) -> None:
    random_file(tmp_path / "big", 8 * 1024 * 1024)
    out = run_cli("copy", str(tmp_path / "big"), str(small_fs / "big"))
    assert out.returncode == 1 and b"not enough space" in out.stderr
    assert list(small_fs.iterdir()) == []


# -- faults: read errors, corruption, resume ------------------------------------------------


class FlakyProvider(PosixProvider):
    """Reads fail past 1 MiB while the file ``<source>.fail`` exists (a dying disk)."""

    scheme = "flaky"

    def read_into(self, key: str, offset: int, buf: memoryview) -> int:
        if offset + len(buf) > (1 << 20) and os.path.exists(self.path(key) + ".fail"):
            raise ChunkFailed(f"injected read error in {key} at {offset}", retryable=False)
        return super().read_into(key, offset, buf)

    @property
    def capabilities(self):
        from dataclasses import replace

        return replace(super().capabilities, local_path=False)  # force the streaming strategy


class CorruptingWriter(FileWriter):
    """Flips one bit of every part between the read and the write."""

    def write_part(self, part, offset, data, expected):
        bad = bytearray(data)
        bad[len(bad) // 2] ^= 0x01
        return super().write_part(part, offset, memoryview(bad), expected)


class CorruptingProvider(PosixProvider):
    scheme = "corrupting"

    @property
    def capabilities(self):
        from dataclasses import replace

        return replace(super().capabilities, local_path=False)  # bytes pass through mover

    def open_writer(self, key, size):
        w = super().open_writer(key, size)
        return CorruptingWriter(self, w.path, w.temp)

    def resume_writer(self, key, state):
        return CorruptingWriter(self, self.path(key), state["temp"])


@pytest.fixture
def fault_providers():
    providers.register("flaky", FlakyProvider)
    providers.register("corrupting", CorruptingProvider)
    yield
    providers.unregister("flaky")
    providers.unregister("corrupting")


def test_read_error_fails_cleanly_and_resume_finishes(tmp_path: Path, fault_providers) -> None:
    src = random_file(tmp_path / "vol.img", 20 * 1024 * 1024)
    (tmp_path / "vol.img.fail").write_bytes(b"")
    dst = tmp_path / "out" / "vol.img"
    dst.parent.mkdir()
    dst.write_bytes(b"the previous backup")
    jobs = SqliteJobStore()
    job = mover.copy(
        f"flaky://{src}", str(dst), chunk_size=1 << 20, jobs=jobs, raise_on_failure=False
    )
    assert job.state == "failed" and "injected read error" in (job.error or "")
    assert dst.read_bytes() == b"the previous backup"  # untouched
    assert not leftovers(tmp_path)  # temporary file gone
    (tmp_path / "vol.img.fail").unlink()  # the cause is gone
    done = mover.resume(job.id, jobs=jobs)
    assert done.state == "done"
    assert sha256(dst) == sha256(src)
    assert not leftovers(tmp_path)


def test_injected_corruption_is_detected(tmp_path: Path, fault_providers) -> None:
    src = random_file(tmp_path / "a.img", 3 * 1024 * 1024)
    dst = tmp_path / "b.img"
    with pytest.raises(MoverError, match="would store"):
        mover.copy(str(src), f"corrupting://{dst}", chunk_size=1 << 20)
    assert not dst.exists()
    assert not leftovers(tmp_path)


def test_interrupted_job_resumes_only_missing_chunks(tmp_path: Path) -> None:
    """A job whose process died keeps its done chunks: resume runs only the others."""
    src = random_file(tmp_path / "a.img", 8 * 1024 * 1024)
    dst = tmp_path / "b.img"
    jobs = SqliteJobStore()
    from mover.executors.embedded import EmbeddedExecutor
    from mover.motion import Options
    from mover.transfer import Request, prepare

    job = prepare(Request(str(src), f"memory://m/{dst.name}", options=Options(2, 1 << 20)))
    jobs.create(job)

    class Dies(EmbeddedExecutor):
        """Stops the process's work after 3 chunks, as kill -9 would: no abort, no cleanup."""

        def _run_chunk(self, run, chunk):
            if chunk.index >= 3:
                with run.lock:
                    run.outstanding -= 1
                    last = run.outstanding == 0
                if last:
                    self._item_finished()
                return
            super()._run_chunk(run, chunk)

    Dies(jobs, streams=1).run(job)
    half = jobs.get(job.id)
    assert [c.state for c in half.items[0].chunks].count("done") == 3
    jobs.update_job(job.id, state="running", owner="elsewhere:1")
    done = mover.resume(job.id, jobs=jobs)
    assert done.state == "done"
    from mover.providers.memory import _OBJECTS

    assert _OBJECTS["m"][dst.name] == src.read_bytes()


# -- plugins from outside the core ----------------------------------------------------------


def test_third_party_provider_and_strategy(tmp_path: Path, monkeypatch) -> None:
    if "vendorx" not in providers:
        pytest.fail("the test plugin did not load (tests/testplugin.py)")
    monkeypatch.setenv("VENDORX_ROOT", str(tmp_path / "vx"))
    src = random_file(tmp_path / "a.img", 3 * 1024 * 1024 + 5)
    out = run_cli("strategies", str(src), "vendorx://bucket/a.img")
    assert out.returncode == 0, out.stderr
    assert b"winner: vendorx-ingest" in out.stdout and b"PLUGIN" in out.stdout
    from mover_testplugin.strategy import VendorIngestStrategy

    before = VendorIngestStrategy.chunks_run
    job = mover.copy(str(src), "vendorx://bucket/a.img")
    assert job.items[0].strategy == "vendorx-ingest"
    assert VendorIngestStrategy.chunks_run > before
    assert (tmp_path / "vx" / "bucket" / "a.img").read_bytes() == src.read_bytes()
    back = mover.copy("vendorx://bucket/a.img", str(tmp_path / "back.img"))
    assert back.state == "done" and (tmp_path / "back.img").read_bytes() == src.read_bytes()


def test_many_chunks_to_stdout_arrive_in_order(tmp_path: Path) -> None:
    """stdout takes parts in order only: the parallel streaming strategy must not write it."""
    data = os.urandom(6 * 1024 * 1024 + 3)
    (tmp_path / "a").write_bytes(data)
    out = run_cli("copy", "-q", "--chunk-size", "1MiB", "--streams", "4", str(tmp_path / "a"), "-")
    assert out.returncode == 0, out.stderr
    assert out.stdout == data


def test_same_process_copies_again_after_the_destination_was_removed(tmp_path: Path) -> None:
    """The file store remembers folders it made; one removed meanwhile is made again."""
    import shutil

    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a").write_bytes(b"abc")
    assert mover.copy(str(src), str(tmp_path / "dst"), recursive=True).state == "done"
    shutil.rmtree(tmp_path / "dst")
    assert mover.copy(str(src), str(tmp_path / "dst"), recursive=True).state == "done"
    assert (tmp_path / "dst" / "sub" / "a").read_bytes() == b"abc"


def test_many_small_files_are_committed_in_groups(tmp_path: Path) -> None:
    """Inside a job of many objects the file store groups small commits (one syncfs, then
    the renames); every file is in place, whole, when the job is done."""
    src = tmp_path / "tree"
    src.mkdir()
    for i in range(40):
        (src / f"f{i}").write_bytes(os.urandom(1000 + i))
    job = mover.copy(str(src), str(tmp_path / "dst"), recursive=True)
    assert job.state == "done"
    for i in range(40):
        assert (tmp_path / "dst" / f"f{i}").read_bytes() == (src / f"f{i}").read_bytes()
    assert not leftovers(tmp_path)


def test_resume_copies_again_a_done_object_that_is_missing(tmp_path: Path) -> None:
    src = tmp_path / "tree"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}").write_bytes(b"x" * (i + 1))
    jobs = SqliteJobStore()
    job = mover.copy(str(src), str(tmp_path / "dst"), recursive=True, jobs=jobs)
    (tmp_path / "dst" / "f1").unlink()
    jobs.update_job(job.id, state="failed")
    done = mover.resume(job.id, jobs=jobs)
    assert done.state == "done"
    assert (tmp_path / "dst" / "f1").read_bytes() == b"xx"


def test_small_objects_take_their_lanes_beside_large_chunks(tmp_path: Path) -> None:
    """A job of many small files and a large one: small objects run whole on the small-object
    lanes (many in flight), the large one's chunks on the streams; every file arrives intact."""
    import threading

    src = tmp_path / "src"
    src.mkdir()
    for n in range(40):
        (src / f"s{n:02d}.bin").write_bytes(os.urandom(1000 + n))
    random_file(src / "large.bin", 24 << 20)
    names: set[str] = set()
    job = mover.copy(
        f"{src}/",
        f"{tmp_path / 'dst'}/",
        recursive=True,
        streams=2,
        chunk_size=8 << 20,
        on_progress=lambda _n: names.add(threading.current_thread().name),
    )
    assert job.state == "done" and len(job.items) == 41
    for path in src.iterdir():
        assert sha256(path) == sha256(tmp_path / "dst" / path.name), path.name
    assert any(n.startswith("mover-small-") for n in names), names
    assert any(n.startswith("mover-stream-") for n in names), names
    assert not leftovers(tmp_path / "dst")
