"""Workers that share nothing but a PostgreSQL catalogue resolve ``store:NAME`` the same way.

Two ``mover worker`` processes, each with a state directory (and so a SQLite catalogue) of
its own, and the caller with a third: a store added by the caller to the PostgreSQL catalogue
(``MOVER_CATALOGUE_URL``) is found by both workers, which run the chunks of one job into it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_fleet import (  # noqa: F401
    make_fleet,
    random_file,
    slow_http,
    wait_final,
)

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.celery]


def test_two_workers_resolve_a_store_from_one_postgresql_catalogue(
    redis_server: Any,
    postgres_url: str,
    slow_http: Any,  # noqa: F811
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    import psycopg

    from mover.catalogue.backends import TABLES, open_backend

    with open_backend(postgres_url).transaction():
        pass
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)}")
    fleet = make_fleet(redis_server, tmp_path, request, MOVER_CATALOGUE_URL=postgres_url)
    images = tmp_path / "images"
    images.mkdir()
    added = fleet.mover("stores", "add", "shared", f"file://{images}/")
    assert added.returncode == 0, added.stderr
    try:
        workers = [
            # Default queues: they include mover.store.shared, found in the catalogue.
            fleet.start_worker(name, env={"MOVER_STATE_DIR": str(tmp_path / f"state-{name}")})
            for name in ("pg1", "pg2")
        ]
        fleet.wait_ready(*workers)
        # 12 chunks of 1 MiB at 3 MiB/s each: both workers' pools get some.
        random_file(Path(slow_http.root) / "shared.bin", 12 << 20)
        out = fleet.mover(
            "copy",
            f"{slow_http.url}/shared.bin",
            "store:shared/slow.bin",
            "--chunk-size",
            "1MiB",
            "--executor",
            "celery",
        )
        assert out.returncode == 0, out.stderr
        job_id = out.stdout.strip()
        jobs = fleet.jobs()
        job = wait_final(jobs, job_id)
        assert job.state == "done", job.error
        assert jobs.commits(job_id, 0) == 1
        for worker in workers:
            assert re.search(rf"job {job_id} object 0 chunk \d+ done", worker.text()), (
                f"{worker.name} ran no chunk:\n{worker.text()[-2000:]}"
            )
            # Each worker's own SQLite catalogue stayed empty: the store came from PostgreSQL.
            assert not (tmp_path / f"state-{worker.name}" / "catalogue.sqlite3").exists()
        source = hashlib.sha256((Path(slow_http.root) / "shared.bin").read_bytes()).hexdigest()
        copy = hashlib.sha256((images / "slow.bin").read_bytes()).hexdigest()
        assert copy == source
    finally:
        for worker in fleet.workers:
            fleet.stop(worker)
