"""HTTP dates (``Last-Modified``, ``Date``) without the ``email`` package.

``email.utils.parsedate_to_datetime`` imports the ``email`` package, several milliseconds of a
command's start for one header. Servers send the IMF-fixdate form of RFC 9110
(``Sun, 06 Nov 1994 08:49:37 GMT``); that form is read here, anything else by the ``email``
package as before.
"""

from __future__ import annotations

from datetime import UTC, datetime

_MONTHS = {
    m: n
    for n, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def parse(text: str) -> datetime:
    """An HTTP date as an aware UTC datetime; raises ValueError (or TypeError) if unreadable."""
    parts = text.split()
    if len(parts) == 6 and parts[5] == "GMT" and parts[2] in _MONTHS:
        hour, minute, second = (int(x) for x in parts[4].split(":"))
        return datetime(
            int(parts[3]),
            _MONTHS[parts[2]],
            int(parts[1]),
            hour,
            minute,
            second,
            tzinfo=UTC,
        )
    from email.utils import parsedate_to_datetime  # other forms (RFC 850, asctime)

    return parsedate_to_datetime(text)
