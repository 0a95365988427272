"""The stores from the benchmark's side: set-up, checks, clean-up (never timed)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import RCLONE_S3, RCLONE_SWIFT, BenchError, MiB
from .data import tree_files


def rclone_remote(name: str, **settings: str) -> dict[str, str]:
    """rclone remote ``name:`` as environment variables (``RCLONE_CONFIG_NAME_TYPE``, ...):
    the peers run with no config file, so nothing of a user's rclone setup leaks in."""
    return {f"RCLONE_CONFIG_{name.upper()}_{k.upper()}": v for k, v in settings.items()}


@dataclass
class S3Side:
    """An S3 endpoint the benchmark uses: a boto3 client for checks, peers' environment."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    pids: list[int]

    def __post_init__(self) -> None:
        import boto3
        from botocore.config import Config

        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
        )

    def env(self) -> dict[str, str]:
        """Variables for mover, boto3, the aws CLI, s5cmd and rclone (remote ``bs3:``)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "S3_ENDPOINT_URL": self.endpoint_url,  # s5cmd
            **rclone_remote(
                RCLONE_S3,
                type="s3",
                provider="SeaweedFS",
                endpoint=self.endpoint_url,
                access_key_id=self.access_key,
                secret_access_key=self.secret_key,
                region=self.region,
                force_path_style="true",
            ),
        }

    def ensure_buckets(self, names: Sequence[str]) -> None:
        existing = {b["Name"] for b in self.client.list_buckets().get("Buckets", [])}
        for bucket in names:
            if bucket not in existing:
                self.client.create_bucket(Bucket=bucket)

    def shape(self, bucket: str, prefix: str) -> tuple[int, int]:
        """(objects, bytes) under ``prefix``."""
        count = total = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            for obj in page.get("Contents", []):
                count += 1
                total += obj["Size"]
        return count, total

    def check_shape(self, bucket: str, prefix: str, objects: int, total: int) -> None:
        got = self.shape(bucket, prefix)
        if got != (objects, total):
            raise BenchError(f"s3://{bucket}/{prefix}: {got}, expected ({objects}, {total})")

    def delete_prefix(self, bucket: str, prefix: str) -> None:
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})

    def upload(self, path: Path, bucket: str, key: str, chunk: int, streams: int) -> None:
        """Put a large file (untimed set-up of a download's source)."""
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=streams
        )
        self.client.upload_file(str(path), bucket, key, Config=config)

    def upload_tree(self, tree: Path, bucket: str, prefix: str) -> None:
        """Put every file of ``tree`` under ``prefix/`` (untimed set-up), 16 at a time."""
        files = list(tree_files(tree))

        def put(p: Path) -> None:
            self.client.put_object(
                Bucket=bucket, Key=f"{prefix}/{p.relative_to(tree)}", Body=p.read_bytes()
            )

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, files))

    def read_through(self, bucket: str, key: str) -> None:
        """GET an object and throw its bytes away: warms the server's caches, untimed."""
        body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        while body.read(8 * MiB):
            pass


@dataclass
class SwiftSide:
    """A Swift account the benchmark uses: a swiftclient connection, peers' environment."""

    auth_url: str
    user: str
    key: str
    pids: list[int]

    def __post_init__(self) -> None:
        self.conn = self._connect()

    def _connect(self) -> Any:
        from swiftclient import client as swift_client

        return swift_client.Connection(
            authurl=self.auth_url, user=self.user, key=self.key, auth_version="1.0"
        )

    def env(self) -> dict[str, str]:
        """Variables for the swift CLI, mover and rclone (remote ``bsw:``)."""
        return {
            "ST_AUTH": self.auth_url,
            "ST_USER": self.user,
            "ST_KEY": self.key,
            **rclone_remote(
                RCLONE_SWIFT, type="swift", auth=self.auth_url, user=self.user, key=self.key
            ),
        }

    def ensure_containers(self, names: Sequence[str]) -> None:
        for container in names:
            self.conn.put_container(container)
            self.conn.put_container(container + "_segments")

    def listing(self, container: str, prefix: str) -> list[dict[str, Any]]:
        _headers, objects = self.conn.get_container(container, prefix=prefix, full_listing=True)
        return objects

    def shape(self, container: str, prefix: str) -> tuple[int, int]:
        objects = self.listing(container, prefix)
        if len(objects) == 1:  # a large object: HEAD gives the SLO's/DLO's real size
            head = self.conn.head_object(container, objects[0]["name"])
            return 1, int(head["content-length"])
        return len(objects), sum(int(o["bytes"]) for o in objects)

    def check_shape(self, container: str, prefix: str, objects: int, total: int) -> None:
        got = self.shape(container, prefix)
        if got != (objects, total):
            raise BenchError(f"swift://{container}/{prefix}: {got}, expected ({objects}, {total})")

    def read_through(self, container: str, name: str) -> None:
        """GET an object and throw its bytes away (warms the server's caches, untimed)."""
        _headers, body = self.conn.get_object(container, name, resp_chunk_size=8 * MiB)
        for _piece in body:
            pass

    def empty(self, container: str) -> None:
        """Delete everything in ``container`` and its segments container, 8 connections at
        once (a swiftclient Connection is not thread-safe)."""
        from swiftclient import client as swift_client

        both = (container, container + "_segments")
        names = [(c, o["name"]) for c in both for o in self.listing(c, "")]

        def delete(batch: list[tuple[str, str]]) -> None:
            conn = self._connect()
            for c, name in batch:
                try:
                    conn.delete_object(c, name)
                except swift_client.ClientException as exc:
                    if exc.http_status != 404:
                        raise

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(delete, [names[i::8] for i in range(8)]))
