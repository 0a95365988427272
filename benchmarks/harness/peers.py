"""Where tools read and write, and the command of each peer for a pair of places."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .base import QUICK_LEAVES_OUT, RCLONE_S3, RCLONE_SWIFT, BenchError, MiB
from .data import tree_shape, warm
from .runs import Case, Tool

if TYPE_CHECKING:
    from .bench import Bench


@dataclass(frozen=True)
class Loc:
    """A place a tool reads or writes: a local path, ``bucket/key`` on S3 or
    ``container/name`` on Swift. A folder or prefix ends in ``/`` on the stores."""

    kind: str  #: "file", "s3" or "swift"
    path: str

    @property
    def store(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def key(self) -> str:
        return self.path.split("/", 1)[1] if "/" in self.path else ""

    def url(self) -> str:
        """mover's, s5cmd's and the aws CLI's spelling."""
        return self.path if self.kind == "file" else f"{self.kind}://{self.path}"

    def rclone(self) -> str:
        remote = {"file": "", "s3": RCLONE_S3 + ":", "swift": RCLONE_SWIFT + ":"}[self.kind]
        return remote + self.path


def fresh(kind: str, base: str, name: str = "") -> Callable[[str], Loc]:
    """Run ``tag``'s destination on a store: ``base/tag/name`` (``name`` empty: the prefix
    ``base/tag/`` a tree goes under), so no tool finds an earlier run's copy there."""
    return lambda tag: Loc(kind, f"{base}/{tag}/{name}")


def _boto3_op(src: Loc, dst: Loc, recursive: bool) -> list[str] | None:
    """The arguments of peer_boto3.py for this pair, or None when it has no such operation."""
    pair = (src.kind, dst.kind)
    if pair == ("file", "s3"):
        if recursive:
            return ["small-up", src.path, dst.store, dst.key.rstrip("/")]
        return ["up", src.path, dst.store, dst.key]
    if pair == ("s3", "file"):
        if recursive:
            return ["small-down", src.store, src.key.rstrip("/"), dst.path]
        return ["down", src.store, src.key, dst.path]
    if pair == ("s3", "s3") and not recursive:
        return ["copy", src.store, src.key, dst.store, dst.key]
    return None


def peer_argv(bench: Bench, name: str, src: Loc, dst: Loc, recursive: bool) -> list[str] | None:
    """The command of peer ``name`` copying ``src`` to ``dst``, given mover's part size and
    concurrency where the peer has such settings; None when the peer cannot do that pair
    (``cp`` to S3) or is not installed."""
    prog = bench.programs.get(name) if name != "boto3" else sys.executable
    if not prog:
        return None
    streams = bench.small_streams if recursive else bench.streams
    chunk_m = f"{bench.chunk // MiB}M"
    kinds = {src.kind, dst.kind}
    if name == "cp":
        if kinds != {"file"}:
            return None
        return [prog, *(["-r"] if recursive else []), src.path, dst.path]
    if name == "rclone":
        verb = "copy" if recursive else "copyto"
        if kinds == {"file"}:  # rclone's defaults, as before the harness
            return [prog, verb, "-q", "--ignore-times", src.path, dst.path]
        argv = [prog, verb, "-q", "--transfers", str(streams)]
        if not recursive and "s3" in kinds and dst.kind == "s3":
            argv += ["--s3-upload-concurrency", str(streams), "--s3-chunk-size", chunk_m]
        if not recursive and dst.kind == "swift":
            argv += ["--swift-chunk-size", chunk_m]
        if not recursive and dst.kind == "file":
            argv += ["--multi-thread-streams", str(streams), "--multi-thread-chunk-size", chunk_m]
        return [*argv, src.rclone(), dst.rclone()]
    if name in ("s5cmd", "aws"):
        if "swift" in kinds or kinds == {"file"}:
            return None
        if name == "aws":
            flags = ["--recursive"] if recursive else []
            return [prog, "s3", "cp", "--quiet", *flags, src.url(), dst.url()]
        # s5cmd copies trees with a wildcard: 'dir/*' or 's3://b/p/*' into a folder or prefix
        source = src.url().rstrip("/") + "/*" if recursive else src.url()
        target = dst.url().rstrip("/") + "/" if recursive else dst.url()
        parts = ["--concurrency", str(streams), "--part-size", str(bench.chunk // MiB)]
        return [prog, "--log", "error", "cp", *([] if recursive else parts), source, target]
    if name == "boto3":
        op = _boto3_op(src, dst, recursive)
        if op is None:
            return None
        script = str(Path(__file__).resolve().parents[1] / "peer_boto3.py")
        return [prog, script, *op, "--chunk", str(bench.chunk), "--streams", str(streams)]
    if name == "swift":
        if src.kind == "file" and dst.kind == "swift":
            threads = ["--object-threads" if recursive else "--segment-threads", str(streams)]
            large = [] if recursive else ["--use-slo", "--segment-size", chunk_m]
            obj = ["--object-name", dst.key.rstrip("/")]
            return [prog, "-q", "upload", *large, *threads, *obj, dst.store, src.path]
        if src.kind == "swift" and dst.kind == "file" and not recursive:
            return [prog, "-q", "download", src.store, src.key, "-o", dst.path]
        return None
    raise BenchError(f"unknown peer {name!r}")


def transfer_case(
    bench: Bench,
    key: str,
    label: str,
    src: Loc,
    dst: Callable[[str], Loc],
    peers: Sequence[str],
    *,
    recursive: bool = False,
    reference: Path | None = None,
    before: Callable[[], None] = lambda: None,
    total_bytes: int | None = None,
    objects: int | None = None,
    movers: Sequence[tuple[str, Sequence[str], dict[str, str]]] = (("mover", (), {}),),
) -> Case:
    """A case copying ``src`` to a fresh ``dst(tag)`` per run: mover and every installed peer.

    ``movers`` names the mover rows, each with extra ``mover copy`` options and environment
    (the fleet cases run ``embedded`` and ``fleet``); peers are left out with ``--quick``
    where :data:`QUICK_LEAVES_OUT` says.

    ``reference`` is the local data ``src`` holds (its source file or tree): each destination
    is checked against it, by shape on every run and byte for byte on each tool's first round
    where the destination is local. Large destinations are removed after each run, small-object
    ones kept until the end (deleting thousands of objects takes long; they are tiny).
    """
    ref = reference if reference is not None else Path(src.path)
    n_objects = objects if objects is not None else (bench.small_files if recursive else 1)
    n_bytes = total_bytes if total_bytes is not None else total_of(ref)
    tools = [
        Tool(
            name,
            lambda t, x=tuple(extra): bench.mover_argv(
                *x, src.url(), dst(t).url(), recursive=recursive
            ),
            mover=True,
            env=dict(env),
        )
        for name, extra, env in movers
    ]
    for name in peers:
        if bench.quick and name in QUICK_LEAVES_OUT:
            continue
        probe = peer_argv(bench, name, src, dst("probe"), recursive)
        if probe is None:
            continue
        local = dst("probe").kind == "file"
        tools.append(
            Tool(
                name,
                lambda t, n=name: peer_argv(bench, n, src, dst(t), recursive) or [],
                local_dst=(lambda t: Path(dst(t).path)) if local else None,
            )
        )

    def prepare(tag: str) -> None:
        where = dst(tag)
        if where.kind == "file":
            Path(where.path).parent.mkdir(parents=True, exist_ok=True)

    def check(tag: str, first: bool) -> None:
        bench.check_loc(dst(tag), n_objects, n_bytes, ref if first else None)

    def clean(tag: str) -> None:
        bench.clean_loc(dst(tag), large=not recursive)

    return Case(
        key,
        label,
        n_bytes,
        n_objects,
        tools,
        check=check,
        clean=clean,
        prepare=prepare,
        before=before,
        server_pids=bench.server_pids(src, dst("probe")),
        unit="obj/s" if recursive else ("s" if n_bytes < MiB else "MiB/s"),
    )


def from_local(
    bench: Bench,
    source: str,
    key: str,
    to: str,
    dst: Callable[[str], Loc],
    peers: Sequence[str],
    *,
    movers: Sequence[tuple[str, Sequence[str], dict[str, str]]] = (("mover", (), {}),),
) -> Case:
    """A case copying one of the bench's local sources to a fresh ``dst(tag)`` per run, the
    source read once first (warm page cache); labelled ``<source> -> <to>``.

    ``source``: ``large`` (the large file), ``tree`` (the small files, copied recursively) or
    ``tiny`` (1 byte); the others as :func:`transfer_case`.
    """
    make, label = {
        "large": (bench.large, lambda: f"{bench.large_label()} file"),
        "tree": (bench.tree, bench.small_label),
        "tiny": (bench.tiny, lambda: "1 B file"),
    }[source]
    path = make()
    return transfer_case(
        bench,
        key,
        f"{label()} -> {to}",
        Loc("file", str(path)),
        dst,
        peers,
        recursive=source == "tree",
        before=lambda: warm(path),
        movers=movers,
    )


def total_of(path: Path) -> int:
    """Bytes of a file or tree."""
    return tree_shape(path)[1]
