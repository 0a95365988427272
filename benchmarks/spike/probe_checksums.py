#!/usr/bin/env python3
"""Do the engines' checksums reach the server and get checked? (facts RESULTS.md relies on)

    .venv/bin/python benchmarks/spike/probe_checksums.py

Against a private SeaweedFS: awscrt sends a PutObject with the right ``x-amz-checksum-crc32c``
(stored) and one with a wrong value (must be refused); obstore puts with each checksum algorithm
it offers, and boto3 (an independent reader) reads back which checksum the server stored.
"""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))
import engines  # noqa: E402


def main() -> int:
    import boto3
    import obstore
    from awscrt import auth, checksums, http, s3
    from awscrt import io as crt_io

    from tests.servers import SeaweedS3Server

    with SeaweedS3Server() as server:
        client = boto3.client("s3", **server.client_kwargs())
        client.create_bucket(Bucket="probe")
        loop = crt_io.EventLoopGroup(1)
        crt = s3.S3Client(
            bootstrap=crt_io.ClientBootstrap(loop, crt_io.DefaultHostResolver(loop)),
            region=server.region,
            signing_config=s3.create_default_s3_signing_config(
                region=server.region,
                credential_provider=auth.AwsCredentialsProvider.new_static(
                    server.access_key, server.secret_key
                ),
            ),
            tls_mode=s3.S3RequestTlsMode.DISABLED,
        )
        data = b"probe" * 4096
        good = checksums.crc32c(data)
        for label, value in (("right", good), ("wrong", good ^ 1)):
            crc = base64.b64encode(value.to_bytes(4, "big")).decode()
            request = http.HttpRequest(
                "PUT",
                f"/probe/crt-{label}",
                http.HttpHeaders(
                    [
                        ("Host", server.endpoint_url.split("://", 1)[1]),
                        ("Content-Length", str(len(data))),
                        ("x-amz-checksum-crc32c", crc),
                    ]
                ),
                body_stream=io.BytesIO(data),
            )
            made = crt.make_request(
                type=s3.S3RequestType.DEFAULT, operation_name="PutObject", request=request
            )
            try:
                made.finished_future.result(30)
                outcome = "stored"
            except Exception as exc:  # the CRT's S3ResponseError for a 4xx
                outcome = f"refused ({getattr(exc, 'status_code', '?')}, {type(exc).__name__})"
            print(f"awscrt PutObject, {label} x-amz-checksum-crc32c: {outcome}")
        target = engines.Target(
            server.endpoint_url, "probe", server.access_key, server.secret_key, server.region
        )
        for algorithm in ("crc64nvme", "sha256"):
            store = engines.Obstore(target, checksum=algorithm).store
            obstore.put(store, f"obstore-{algorithm}", data)
            head = client.head_object(
                Bucket="probe", Key=f"obstore-{algorithm}", ChecksumMode="ENABLED"
            )
            stored = {k: v for k, v in head.items() if k.startswith("Checksum")}
            print(f"obstore put, checksum_algorithm={algorithm}: server stored {stored}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
