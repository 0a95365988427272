#!/usr/bin/env python3
"""The boto3 peer of the object-store benchmarks: one s3transfer operation, as a program.

Run as a child by the harness, so that its wall clock, CPU and peak RSS are measured like every
other tool's (start-up included). Credentials and endpoint come from the environment
(``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ...), as the harness sets them.

    peer_boto3.py up FILE BUCKET KEY --chunk N --streams N
    peer_boto3.py down BUCKET KEY FILE --chunk N --streams N
    peer_boto3.py copy SRC_BUCKET SRC_KEY BUCKET KEY --chunk N --streams N
    peer_boto3.py small-up FOLDER BUCKET PREFIX --chunk N --streams N
    peer_boto3.py small-down BUCKET PREFIX FOLDER --chunk N --streams N

The small-object operations go through one TransferManager, as the aws CLI does.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    from s3transfer.manager import TransferConfig as ManagerConfig
    from s3transfer.manager import TransferManager

    p = argparse.ArgumentParser(prog="peer_boto3.py")
    p.add_argument("op", choices=["up", "down", "copy", "small-up", "small-down"])
    p.add_argument("args", nargs="+")
    p.add_argument("--chunk", type=int, required=True)
    p.add_argument("--streams", type=int, required=True)
    a = p.parse_args(argv)
    client = boto3.client(
        "s3",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=max(10, a.streams)),
    )
    config = TransferConfig(
        multipart_threshold=a.chunk, multipart_chunksize=a.chunk, max_concurrency=a.streams
    )
    if a.op == "up":
        path, bucket, key = a.args
        client.upload_file(path, bucket, key, Config=config)
        return 0
    if a.op == "down":
        bucket, key, path = a.args
        client.download_file(bucket, key, path, Config=config)
        return 0
    if a.op == "copy":
        src_bucket, src_key, bucket, key = a.args
        client.copy({"Bucket": src_bucket, "Key": src_key}, bucket, key, Config=config)
        return 0
    manager_config = ManagerConfig(
        multipart_threshold=a.chunk, multipart_chunksize=a.chunk, max_request_concurrency=a.streams
    )
    with TransferManager(client, manager_config) as manager:
        futures = []
        if a.op == "small-up":
            folder, bucket, prefix = a.args
            for dirpath, _dirs, names in os.walk(folder):
                for name in names:
                    full = os.path.join(dirpath, name)
                    key = f"{prefix}/{os.path.relpath(full, folder)}"
                    futures.append(manager.upload(full, bucket, key))
        else:
            bucket, prefix, folder = a.args
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix + "/"
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    path = os.path.join(folder, obj["Key"][len(prefix) + 1 :])
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    futures.append(manager.download(bucket, obj["Key"], path))
        for future in futures:
            future.result()
    return 0


if __name__ == "__main__":
    sys.exit(main())
