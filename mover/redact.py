"""Signed URLs: the credential in a URL's query is never written down.

An HTTP(S) source is often a *signed* URL: an S3 presigned GET (``X-Amz-Signature``,
``X-Amz-Credential``, ``X-Amz-Security-Token``), a Google Cloud Storage signed URL
(``X-Goog-Signature``), an Azure SAS (``sig``), a Swift temp URL (``temp_url_sig``), a CDN
token (``token``, ``Signature``, ``Key-Pair-Id``). Its query is a bearer credential: whoever
reads it can fetch the object. mover needs the real URL to read the source, and nowhere else:

- job records (SQLite, Redis), ``mover jobs``/``status``/``--json``, errors and logs hold the
  URL with each credential's value replaced by :data:`REDACTED` (:func:`redact`; the CLI and
  the workers also put :class:`RedactingFilter` on their log handlers, so that a library's own
  debug line naming the URL is cut too);
- the real URL is kept in this process's memory only (:func:`remember`), for the embedded
  executor's run, and looked up by the redacted one when a chunk opens the source
  (:func:`reveal`);
- the fleet refuses such a source (a task message and Redis would hold it); a resumed
  embedded job asks for it again (``mover resume JOB --source URL``).
"""

from __future__ import annotations

import logging
import re
import threading

from mover.errors import UsageError

#: What a credential's value becomes.
REDACTED = "REDACTED"
#: Query parameters that are credentials whatever their value (lower case).
SECRET_PARAMS = frozenset(
    {
        "sig",
        "key",
        "apikey",
        "api_key",
        "auth",
        "awsaccesskeyid",
        "key-pair-id",
        "policy",
    }
)
#: A parameter whose name holds one of these is a credential too.
SECRET_WORDS = ("signature", "token", "secret", "password", "passwd", "credential")

#: ``scheme://user:password@``: the password of a URL's user info (a broker's, a database's).
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^/@\s:'\"]*):(?P<password>[^/@\s'\"]+)@")
_PARAM = re.compile(r"(?P<lead>[?&])(?P<name>[^=&#\s'\"]+)=(?P<value>[^&#\s'\"]*)")


def _is_secret(name: str) -> bool:
    low = name.lower()
    return (
        low in SECRET_PARAMS
        or low.endswith(("_sig", "-sig"))
        or any(w in low for w in SECRET_WORDS)
    )


def redact(text: str) -> str:
    """``text`` with the value of every credential parameter of every URL query in it
    replaced by ``REDACTED``, and the password of every URL's user info
    (``redis://:pw@host``, ``amqp://user:pw@host``) too (everything else unchanged)."""
    if "://" in text and "@" in text:
        text = _USERINFO.sub(lambda m: f"{m.group('head')}:{REDACTED}@", text)
    if "=" not in text:
        return text

    def cut(m: re.Match[str]) -> str:
        if not _is_secret(m.group("name")) or m.group("value") == REDACTED:
            return m.group(0)
        return f"{m.group('lead')}{m.group('name')}={REDACTED}"

    return _PARAM.sub(cut, text)


def secret_params(url: str) -> list[str]:
    """Names of the credential parameters in ``url``'s query (empty: nothing to hide)."""
    _, sep, query = url.partition("?")
    if not sep:
        return []
    return [m.group("name") for m in _PARAM.finditer("?" + query) if _is_secret(m.group("name"))]


_known: dict[str, str] = {}
_known_lock = threading.Lock()


def remember(url: str) -> str:
    """Keep a signed URL in this process's memory; return the redacted form to record."""
    shown = redact(url)
    if shown != url:
        with _known_lock:
            _known[shown] = url
    return shown


def reveal(recorded: str) -> str:
    """The real URL behind a recorded (redacted) one, if this process was given it; a URL
    with nothing redacted is returned as is. Raises :class:`UsageError` for a redacted URL
    this process does not know (a job resumed in another process)."""
    if REDACTED not in recorded:
        return recorded
    with _known_lock:
        real = _known.get(recorded)
    if real is None:
        raise UsageError(
            f"{recorded}: a signed URL, whose credential mover does not record; give the URL "
            "again (mover resume JOB --source URL)"
        )
    return real


def recalled(recorded: str) -> bool:
    """Whether this process can open ``recorded``: nothing redacted, or the URL was given."""
    if REDACTED not in recorded:
        return True
    with _known_lock:
        return recorded in _known


def forget(url: str) -> None:
    """Drop a remembered URL (the run that needed it is over)."""
    with _known_lock:
        _known.pop(redact(url), None)


class RedactingFilter(logging.Filter):
    """Cut credentials out of every log line a handler writes (the message with its
    arguments, and the exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cut = redact(message)
        if cut != message:
            record.msg, record.args = cut, None
        if record.exc_info and record.exc_info[1] is not None:
            text = str(record.exc_info[1])
            if redact(text) != text:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Put :class:`RedactingFilter` on every handler of ``logger`` (default: the root)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
