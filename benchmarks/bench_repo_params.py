#!/usr/bin/env python3
"""The measurements behind the backup repository's parameters (docs/REPOSITORY.md).

Four tables, each deciding one choice of :mod:`mover.repository`:

1. **ids and encryption**, MiB/s on one thread over 1 and 4 MiB buffers: keyed BLAKE3 against
   HMAC-SHA256 (the chunk id), AES-256-GCM against ChaCha20-Poly1305 (the AEAD);
2. **compression**, zstd levels 1, 3 and 6 per 1 MiB chunk: ratio and MiB/s on random bytes
   (most changed blocks of a volume) and on shared libraries from /usr/lib (what an OS image
   holds);
3. **chunk size**, from the data set's change model (64 KiB blocks, qcow2's cluster size,
   rewritten at random): the share of chunks a day of 1 %, 2 % and 3 % changes touches, i.e.
   what an incremental stores, for 256 KiB to 4 MiB chunks;
4. **packs**, PUT and GET MiB/s of 1, 4 and 16 MiB objects on 4 and 8 threads with boto3 to a
   SeaweedFS started here (``--no-s3`` to skip): whether grouping chunks into packs pays.

Run: ``.venv/bin/python benchmarks/bench_repo_params.py``. Figures depend on the machine and its
load (printed); compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import glob
import hmac
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness/, beside this file
from harness import REPO, MiB


def rate(fn: Callable[[bytes], object], data: bytes, total: int = 256 * MiB) -> float:
    """Best of 3: MiB/s of ``fn`` over ``data``, repeated to about ``total`` bytes."""
    n = max(1, total // len(data))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn(data)
        best = min(best, time.perf_counter() - start)
    return len(data) * n / best / MiB


def ids_and_encryption() -> None:
    import blake3
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    key, nonce = os.urandom(32), os.urandom(12)
    aes, chacha = AESGCM(key), ChaCha20Poly1305(key)
    print("\n## 1. chunk ids and encryption, MiB/s, one thread")
    print(
        f"{'buffer':>8s} {'blake3 keyed':>13s} {'hmac-sha256':>12s} {'aes-256-gcm':>12s} "
        f"{'chacha20':>9s}"
    )
    for size in (MiB, 4 * MiB):
        d = os.urandom(size)
        print(
            f"{size // MiB:>6d} MiB "
            f"{rate(lambda b: blake3.blake3(b, key=key, max_threads=1).digest(), d):13.0f} "
            f"{rate(lambda b: hmac.digest(key, b, 'sha256'), d):12.0f} "
            f"{rate(lambda b: aes.encrypt(nonce, b, None), d):12.0f} "
            f"{rate(lambda b: chacha.encrypt(nonce, b, None), d):9.0f}"
        )


def compression() -> None:
    import zstandard

    libs = bytearray()
    for path in sorted(glob.glob("/usr/lib/x86_64-linux-gnu/*.so*")):
        try:
            libs += Path(path).read_bytes()
        except OSError:
            continue
        if len(libs) >= 64 * MiB:
            break
    samples = {"random": os.urandom(64 * MiB), "libraries": bytes(libs[: 64 * MiB])}
    print("\n## 2. zstd per 1 MiB chunk: stored/raw and MiB/s, one thread")
    print(f"{'level':>5s} " + " ".join(f"{k + ' ratio':>16s} {k + ' MiB/s':>16s}" for k in samples))
    for level in (1, 3, 6):
        c = zstandard.ZstdCompressor(level=level)
        cells = []
        for data in samples.values():
            if not data:
                cells.append(f"{'-':>16s} {'-':>16s}")
                continue
            start = time.perf_counter()
            out = sum(
                min(len(c.compress(data[i : i + MiB])), MiB) for i in range(0, len(data), MiB)
            )
            seconds = time.perf_counter() - start
            cells.append(f"{out / len(data):16.3f} {len(data) / MiB / seconds:16.0f}")
        print(f"{level:>5d} " + " ".join(cells))


def chunk_sizes() -> None:
    print("\n## 3. share of chunks touched by a day of random 64 KiB block rewrites")
    print(f"{'chunk':>8s} " + " ".join(f"{p:>6.0%}" for p in (0.01, 0.02, 0.03)))
    for kib in (256, 512, 1024, 2048, 4096):
        blocks = kib // 64
        cells = " ".join(f"{1 - (1 - p) ** blocks:6.1%}" for p in (0.01, 0.02, 0.03))
        print(f"{kib:>5d} KiB {cells}")


def packs(total: int) -> None:
    sys.path.insert(0, str(REPO))
    import boto3

    from tests.servers import SeaweedS3Server

    print("\n## 4. S3 (SeaweedFS here): object size and threads, boto3")
    with SeaweedS3Server() as s3:
        client = boto3.client("s3", **s3.client_kwargs())
        client.create_bucket(Bucket="params")
        data = os.urandom(16 * MiB)
        for i in range(4):  # warm the server
            client.put_object(Bucket="params", Key=f"warm/{i}", Body=data)
        for size in (MiB, 4 * MiB, 16 * MiB):
            for threads in (4, 8):
                n = total // size
                body = data[:size]
                keys = [f"s{size}/t{threads}/{i}" for i in range(n)]
                cells = []
                for op in ("put", "get"):
                    start = time.perf_counter()
                    with ThreadPoolExecutor(threads) as pool:
                        if op == "put":
                            list(
                                pool.map(
                                    lambda k, b=body: client.put_object(
                                        Bucket="params", Key=k, Body=b
                                    ),
                                    keys,
                                )
                            )
                        else:
                            list(
                                pool.map(
                                    lambda k: client.get_object(Bucket="params", Key=k)[
                                        "Body"
                                    ].read(),
                                    keys,
                                )
                            )
                    seconds = time.perf_counter() - start
                    cells.append(
                        f"{op.upper()} {total / MiB / seconds:6.0f} MiB/s {n / seconds:6.0f} obj/s"
                    )
                print(f"{size // MiB:>3d} MiB x {n:4d}, {threads} threads: " + "   ".join(cells))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--s3-bytes", type=int, default=512 * MiB)
    args = ap.parse_args()
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    ids_and_encryption()
    compression()
    chunk_sizes()
    if not args.no_s3:
        packs(args.s3_bytes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
