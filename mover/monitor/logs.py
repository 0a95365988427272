"""Log lines for people and for machines: ``--log-format text|json`` (or ``MOVER_LOG_FORMAT``).

``json`` writes one object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
``message``, and on every line about a job its ``job``, ``item``, ``chunk``, ``store`` and
``queue``. Those come from, in order:

1. the record itself (``log.info(..., extra={"job": ...})``);
2. the context of the task running in this thread: a Celery signal binds them when a chunk or
   commit task starts (its arguments are the job id and indexes; the queue is its routing key;
   the store is the destination's, read once from the job record) and unbinds them after;
   :func:`bind` does the same for any code;
3. the words mover's messages use (DESIGN.md): ``job ID object N chunk M`` in the text.

Never a secret, in either format: user info in URLs is masked (``redis://:***@host``), and so
is, anywhere in a line, the value of every environment variable whose name says it is secret
(``*SECRET*``, ``*PASSWORD*``, ``*TOKEN*``, ``*_KEY``, ``*AUTH*``, ``*CREDENTIAL*``) and the
password of the broker URL. That is a safety net: mover's own messages carry no secret to begin
with.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

#: The fields a line about a job carries.
JOB_FIELDS = ("job", "item", "chunk", "store", "queue")
FORMATS = ("text", "json")
ENV = "MOVER_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "mover_log_context", default=None
)
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|_KEY$|^KEY$|AUTH|CREDENTIAL", re.I)
_USERINFO = re.compile(r"(\w[\w+.-]*://)([^/@\s:]*):([^/@\s]+)@")
_JOB_WORDS = re.compile(
    r"\bjob (?P<job>[0-9a-f]{8,})(?: object (?P<item>\d+))?(?: chunk (?P<chunk>\d+))?"
)


def push(fields: dict[str, Any]) -> contextvars.Token[dict[str, Any] | None]:
    """Add ``fields`` to the log context until :func:`pop` with the returned token."""
    return _context.set({**(_context.get() or {}), **fields})


def pop(token: contextvars.Token[dict[str, Any] | None]) -> None:
    try:
        _context.reset(token)
    except ValueError:  # pushed in another context (a thread pool's): clear instead
        _context.set(None)


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (``job``, ``item``, ...) to every line logged in this context."""
    token = push(fields)
    try:
        yield
    finally:
        pop(token)


def secrets_from_env(env: dict[str, str] | None = None) -> list[str]:
    """Values that must never appear in a line (see the module docstring), longest first."""
    env = dict(os.environ if env is None else env)
    found = {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 4}
    for name in ("MOVER_BROKER_URL", "MOVER_JOBS_URL", "MOVER_RESULT_BACKEND"):
        try:
            password = urlsplit(env.get(name) or "").password
        except ValueError:
            password = None
        if password and len(password) >= 4:
            found.add(password)
    return sorted(found, key=len, reverse=True)


class _Redacting(logging.Formatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.secrets = secrets_from_env()

    def redact(self, text: str) -> str:
        text = _USERINFO.sub(r"\1\2:***@", text)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


class TextFormatter(_Redacting):
    """The human format, with secrets masked."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


def job_fields(record: logging.LogRecord, message: str) -> dict[str, Any]:
    """``job``, ``item``, ``chunk``, ``store``, ``queue`` of a record (see the module
    docstring); empty when the line is about no job."""
    out: dict[str, Any] = {}
    context = _context.get() or {}
    for name in JOB_FIELDS:
        value = getattr(record, name, None)
        if value is None:
            value = context.get(name)
        if value is not None:
            out[name] = value
    if "job" not in out:
        match = _JOB_WORDS.search(message)
        if match:
            out.update(
                {k: (v if k == "job" else int(v)) for k, v in match.groupdict().items() if v}
            )
    if "job" in out:
        for name in JOB_FIELDS:
            out.setdefault(name, None)
    return out


class JsonFormatter(_Redacting):
    """One JSON object per line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        message = self.redact(record.getMessage())
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        line.update(job_fields(record, message))
        decided = getattr(record, "autoscale", None)
        if decided is not None:  # the controller's decision, field by field
            line["autoscale"] = decided
        if record.exc_info:
            line["exception"] = self.redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str, ensure_ascii=False)


def formatter(fmt: str | None = None) -> logging.Formatter:
    """The formatter for ``fmt`` (default ``MOVER_LOG_FORMAT``, else text)."""
    fmt = (fmt or os.environ.get(ENV) or "text").lower()
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure(level: int = logging.WARNING, fmt: str | None = None) -> None:
    """Log to stderr at ``level`` in ``fmt``; the choice is kept in ``MOVER_LOG_FORMAT`` so
    that processes this one starts (a worker's celery) log alike."""
    if fmt:
        os.environ[ENV] = fmt
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "mover", False)]
    if root.handlers and not ours:
        return  # configured by whoever embeds mover (or a test harness), as basicConfig does
    for old in ours:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.mover = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


def reformat(logger: logging.Logger) -> None:
    """Give every handler of ``logger`` mover's formatter (Celery's signals call this once
    the worker has set up its own handlers)."""
    for handler in logger.handlers:
        handler.setFormatter(formatter())
