"""HTTP dates read by :mod:`mover.httpdate` agree with the standard library's ``email`` parser
(an implementation mover did not write), and an unreadable date is an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

import pytest

from mover import httpdate


@pytest.mark.parametrize("days", [0, 1, 31, 59, 365, 4000, 20000])
def test_imf_fixdates_agree_with_the_email_package(days: int):
    when = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC) + timedelta(days=days, seconds=days * 7)
    text = format_datetime(when, usegmt=True)  # "Sun, 06 Nov 1994 08:49:37 GMT"
    assert httpdate.parse(text) == parsedate_to_datetime(text) == when


@pytest.mark.parametrize("text", ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"])
def test_obsolete_forms_are_read_as_the_email_package_reads_them(text: str):
    assert httpdate.parse(text) == parsedate_to_datetime(text)


@pytest.mark.parametrize("text", ["", "yesterday", "Sun, 06 Nov 1994 25:61:00 GMT"])
def test_an_unreadable_date_is_an_error(text: str):
    with pytest.raises((ValueError, TypeError)):
        httpdate.parse(text)
