"""Job records in a SQLite file in the user's state directory, so that ``mover jobs``,
``mover status`` and ``mover resume`` work without any server.

The file is ``$MOVER_STATE_DIR/jobs.sqlite3``, by default under the XDG state directory
(``~/.local/state/mover``). WAL mode with ``synchronous=NORMAL``.

Writes behind: progress updates (plans, chunk and item states) are queued and committed by one
writer thread in a single transaction every ``flush_interval_s`` (group commit), because a
recursive copy of thousands of small objects would otherwise spend more time in SQLite
transactions, and in contention for them, than moving bytes. Reads flush first, so a reader in
this process always sees every write. A crash may lose the last interval of updates: those
chunks run again on resume (chunks are idempotent), and an object whose plan was lost may leave
its temporary file behind.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mover import sqlrows
from mover.dirs import state_dir
from mover.errors import JobNotFound, MoverError
from mover.jobs import COMMITTING, RUNNING, ChunkRecord, Item, Job, JobStore
from mover.jobstores import ITEM_FIELDS, JOB_FIELDS, check_fields

if TYPE_CHECKING:
    from mover.cleanup import PendingAbort

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, source TEXT, destination TEXT, state TEXT, recursive INTEGER,
    executor TEXT, options TEXT, error TEXT, created REAL, updated REAL, finished REAL,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS items (
    job_id TEXT, idx INTEGER, source TEXT, destination TEXT, size INTEGER, state TEXT,
    strategy TEXT, plan TEXT, digest TEXT, error TEXT, bytes_through INTEGER, version TEXT,
    checksum TEXT,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS chunks (
    job_id TEXT, item INTEGER, idx INTEGER, offset INTEGER, length INTEGER, state TEXT,
    digest TEXT, error TEXT, receipt TEXT,
    PRIMARY KEY (job_id, item, idx)
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created);
CREATE TABLE IF NOT EXISTS pending_aborts (
    job_id TEXT, item INTEGER, record TEXT, next_at REAL, PRIMARY KEY (job_id, item)
);
"""

#: The tables' columns, named for the record fields they hold (:mod:`mover.sqlrows`), in the
#: tables' order; an item's row starts with ``job_id``, a chunk's with ``job_id, item``.
_JOB_COLUMNS = sqlrows.columns(
    "id, source, destination, state, recursive, executor, options, error, created, updated, "
    "finished, owner"
)
_ITEM_COLUMNS = sqlrows.columns(
    "index, source, destination, size, state, strategy, plan, digest, error, bytes_through, "
    "version, checksum"
)
_CHUNK_COLUMNS = sqlrows.columns("index, offset, length, state, digest, error, receipt")
#: The item columns ``list`` reads, in the order its SELECT names them.
_LISTED_COLUMNS = sqlrows.columns(
    "index, source, destination, size, state, strategy, digest, bytes_through"
)
_ENCODE: sqlrows.Codec = {
    "recursive": int,
    "options": json.dumps,
    "plan": lambda plan: None if plan is None else json.dumps(plan),
    "receipt": lambda receipt: json.dumps(receipt) if receipt else None,  # {}: no receipt
}
_DECODE: sqlrows.Codec = {
    "recursive": bool,
    "options": lambda text: json.loads(text or "{}"),
    "plan": sqlrows.json_or_none,
    "receipt": sqlrows.json_or_none,
}

#: Columns added after the first release: (table, column, type). A store made before them
#: gets them when it is opened (SQLite appends them, so ``SELECT *`` keeps its order).
_ADDED_COLUMNS = (("items", "version", "TEXT"), ("items", "checksum", "TEXT"))


def _add_missing_columns(db: sqlite3.Connection) -> None:
    for table, column, kind in _ADDED_COLUMNS:
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            try:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):  # another process added it just now
                    raise


def default_path() -> Path:
    base = state_dir()
    return Path(base) / "jobs.sqlite3"


class SqliteJobStore(JobStore):
    """A :class:`JobStore` in one SQLite file, shared by the threads of one process (and,
    through SQLite's locking, by several processes on one host)."""

    def __init__(
        self,
        path: str | Path | None = None,
        write_behind: bool = True,
        flush_interval_s: float = 0.05,
    ) -> None:
        self.path = Path(path) if path else default_path()
        self.write_behind = write_behind
        self.flush_interval_s = flush_interval_s
        self._cv = threading.Condition()
        self._queue: list[tuple[str, Any]] = []
        self._queued = 0  # batches queued so far
        self._written = 0  # batches committed so far
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, timeout=30, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            _add_missing_columns(self._db)
        except (OSError, sqlite3.Error) as exc:
            raise MoverError(f"cannot open the job store {self.path}: {exc}") from exc
        self._lock = threading.RLock()

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()

    # -- write-behind -------------------------------------------------------------------------

    def _submit(self, statements: list[tuple[str, Any]]) -> None:
        if not self.write_behind:
            self._tx(statements)
            return
        with self._cv:
            self._queue.extend(statements)
            self._queued += 1
            self._ensure_writer()

    def _ensure_writer(self) -> None:
        """Start the writer thread unless it runs (it ends when idle); under ``_cv``."""
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(
                target=self._write_loop, name="mover-jobstore", daemon=True
            )
            self._writer.start()

    def _write_loop(self) -> None:
        while True:
            with self._cv:
                if not self._queue:
                    self._cv.wait(self.flush_interval_s)
                if not self._queue:
                    return  # idle: the next submit starts a new writer
                batch, self._queue = self._queue, []
                upto = self._queued
            try:
                self._tx(batch)
            except BaseException as exc:  # surfaced to the next flush or read
                self._writer_error = exc
            with self._cv:
                self._written = upto
                self._cv.notify_all()

    def flush(self) -> None:
        """Wait until every queued write is committed."""
        with self._cv:
            target = self._queued
            while self._written < target:
                self._ensure_writer()
                self._cv.notify_all()
                self._cv.wait(0.5)
        if self._writer_error is not None:
            exc, self._writer_error = self._writer_error, None
            raise MoverError(f"cannot write to the job store {self.path}: {exc}") from exc

    # -- writing ----------------------------------------------------------------------------

    def _tx(self, statements: list[tuple[str, Any]]) -> None:
        with self._lock, sqlrows.transaction(self._db):
            for sql, args in statements:
                if isinstance(args, list):
                    self._db.executemany(sql, args)
                else:
                    self._db.execute(sql, args)

    def create(self, job: Job) -> None:
        self.flush()
        row = sqlrows.values(job, _JOB_COLUMNS, _ENCODE)
        stmts: list[tuple[str, Any]] = [("INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", row)]
        stmts += self._item_rows(job.id, job.items)
        self._tx(stmts)

    def _item_rows(self, job_id: str, items: list[Item]) -> list[tuple[str, Any]]:
        item_rows = [(job_id, *sqlrows.values(i, _ITEM_COLUMNS, _ENCODE)) for i in items]
        chunk_rows = [
            (job_id, i.index, *sqlrows.values(c, _CHUNK_COLUMNS, _ENCODE))
            for i in items
            for c in i.chunks
        ]
        return [
            ("INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", item_rows),
            ("INSERT OR REPLACE INTO chunks VALUES (?,?,?,?,?,?,?,?,?)", chunk_rows),
        ]

    def save_item(self, job_id: str, item: Item) -> None:
        stmts: list[tuple[str, Any]] = [
            ("DELETE FROM chunks WHERE job_id=? AND item=?", (job_id, item.index))
        ]
        self._submit(stmts + self._item_rows(job_id, [item]))

    @staticmethod
    def _chunk_done_sql(
        job_id: str, item: int, chunk: int, receipt: dict[str, Any]
    ) -> tuple[str, Any]:
        return (
            "UPDATE chunks SET state='done', digest=?, error=NULL, receipt=? "
            "WHERE job_id=? AND item=? AND idx=?",
            (receipt.get("digest"), json.dumps(receipt), job_id, item, chunk),
        )

    def record_chunk(self, job_id: str, item: int, chunk: int, receipt: dict[str, Any]) -> None:
        self._submit([self._chunk_done_sql(job_id, item, chunk, receipt)])

    def chunk_done(self, job_id: str, item: int, chunk: int, receipt: dict[str, Any]) -> int:
        self.flush()
        with self._lock:
            self._tx([self._chunk_done_sql(job_id, item, chunk, receipt)])
            row = self._db.execute(
                "SELECT COUNT(*) FROM chunks WHERE job_id=? AND item=? AND state!='done'",
                (job_id, item),
            ).fetchone()
        return int(row[0])

    def chunk_failed(self, job_id: str, item: int, chunk: int, error: str) -> None:
        self._submit(
            [
                (
                    "UPDATE chunks SET state='failed', error=? WHERE job_id=? AND item=? AND idx=?",
                    (error, job_id, item, chunk),
                )
            ]
        )

    def update_item(self, job_id: str, item: int, **fields: Any) -> None:
        check_fields(fields, ITEM_FIELDS, "item")
        sets = ", ".join(f"{k}=?" for k in fields)
        self._submit(
            [
                (
                    f"UPDATE items SET {sets} WHERE job_id=? AND idx=?",
                    (*fields.values(), job_id, item),
                )
            ]
        )

    def update_job(self, job_id: str, **fields: Any) -> None:
        check_fields(fields, JOB_FIELDS, "job")
        fields["updated"] = time.time()
        sets = ", ".join(f"{k}=?" for k in fields)
        self._submit([(f"UPDATE jobs SET {sets} WHERE id=?", (*fields.values(), job_id))])

    def claim_commit(self, job_id: str, item: int) -> bool:
        self.flush()
        with self._lock:
            with sqlrows.transaction(self._db):
                cur = self._db.execute(
                    "UPDATE items SET state=? WHERE job_id=? AND idx=? AND state=?",
                    (COMMITTING, job_id, item, RUNNING),
                )
            return cur.rowcount == 1

    # -- reading ----------------------------------------------------------------------------

    def _resolve(self, job_id: str) -> str:
        rows = self._db.execute(
            "SELECT id FROM jobs WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
            (job_id.replace("%", "\\%").replace("_", "\\_") + "%",),
        ).fetchall()
        if len(rows) != 1:
            why = "matches several jobs" if rows else "is unknown"
            raise JobNotFound(f"job {job_id!r} {why} (see mover jobs)")
        return rows[0][0]

    def _job_from_row(self, row: tuple) -> Job:
        return Job(**sqlrows.fields(_JOB_COLUMNS, row, _DECODE))

    def get(self, job_id: str) -> Job:
        self.flush()
        with self._lock:
            jid = self._resolve(job_id)
            job = self._job_from_row(
                self._db.execute("SELECT * FROM jobs WHERE id=?", (jid,)).fetchone()
            )
            items = self._db.execute(
                "SELECT * FROM items WHERE job_id=? ORDER BY idx", (jid,)
            ).fetchall()
            chunks = self._db.execute(
                "SELECT * FROM chunks WHERE job_id=? ORDER BY item, idx", (jid,)
            ).fetchall()
        by_item: dict[int, list[ChunkRecord]] = {}
        for c in chunks:  # job_id, item, then the chunk's columns
            record = ChunkRecord(**sqlrows.fields(_CHUNK_COLUMNS, c[2:], _DECODE))
            by_item.setdefault(c[1], []).append(record)
        for r in items:  # job_id, then the item's columns
            fields = sqlrows.fields(_ITEM_COLUMNS, r[1:], _DECODE)
            job.items.append(Item(**fields, chunks=by_item.get(r[1], [])))
        return job

    def list(self, limit: int = 20) -> list[Job]:
        self.flush()
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,)
            ).fetchall()
            jobs = [self._job_from_row(r) for r in rows]
            for job in jobs:
                for r in self._db.execute(
                    "SELECT idx, source, destination, size, state, strategy, digest, "
                    "bytes_through FROM items WHERE job_id=? ORDER BY idx",
                    (job.id,),
                ):
                    job.items.append(Item(**sqlrows.fields(_LISTED_COLUMNS, r)))
        return jobs

    # -- pending aborts (mover.cleanup) -------------------------------------------------------

    def save_pending_abort(self, record: PendingAbort) -> None:
        self.flush()
        self._tx(
            [
                (
                    "INSERT OR REPLACE INTO pending_aborts VALUES (?, ?, ?, ?)",
                    (record.job_id, record.item, json.dumps(record.to_dict()), record.next_at),
                )
            ]
        )

    def _aborts(self, sql: str, args: tuple[Any, ...]) -> list[PendingAbort]:
        from mover.cleanup import PendingAbort

        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [PendingAbort.from_dict(json.loads(r[0])) for r in rows]

    def pending_aborts(self, job_id: str | None = None) -> list[PendingAbort]:
        if job_id is None:
            return self._aborts("SELECT record FROM pending_aborts ORDER BY next_at", ())
        return self._aborts(
            "SELECT record FROM pending_aborts WHERE job_id=? ORDER BY item", (job_id,)
        )

    def due_aborts(self, limit: int, hold_s: float) -> list[PendingAbort]:
        now = self.clock()
        due = self._aborts(
            "SELECT record FROM pending_aborts WHERE next_at<=? ORDER BY next_at LIMIT ?",
            (now, limit),
        )
        self._tx(
            [
                (
                    "UPDATE pending_aborts SET next_at=? WHERE job_id=? AND item=?",
                    [(now + hold_s, r.job_id, r.item) for r in due],
                )
            ]
        )
        return due

    def drop_pending_abort(self, job_id: str, item: int) -> None:
        self._tx([("DELETE FROM pending_aborts WHERE job_id=? AND item=?", (job_id, item))])
