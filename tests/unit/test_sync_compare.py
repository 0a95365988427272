"""How sync decides an object differs: size, then a common whole-object digest, else time."""

from __future__ import annotations

import pytest

from mover.provider import ObjectInfo
from mover.syncing import MODIFY_WINDOW_S, difference


def _info(size: int = 10, checksum: str | None = None, mtime: float | None = 100.0):
    return ObjectInfo("k", size, checksum=checksum, mtime=mtime)


@pytest.mark.parametrize(
    ("src", "dst", "want"),
    [
        (_info(10), _info(11), "size"),
        (_info(checksum="md5:aa"), _info(checksum="md5:bb"), "checksum"),
        # Same digest: unchanged, whatever the times say.
        (_info(checksum="md5:aa", mtime=900), _info(checksum="md5:aa", mtime=100), None),
        # Digests of different algorithms cannot be compared: times decide.
        (_info(checksum="md5:aa", mtime=900), _info(checksum="crc32c:bb", mtime=100), "newer"),
        (_info(mtime=100 + MODIFY_WINDOW_S + 0.5), _info(mtime=100), "newer"),
        # Within the window (S3 keeps whole seconds): unchanged.
        (_info(mtime=100.9), _info(mtime=100), None),
        (_info(mtime=50), _info(mtime=100), None),
        (_info(mtime=None), _info(mtime=100), None),
    ],
)
def test_difference(src: ObjectInfo, dst: ObjectInfo, want: str | None) -> None:
    assert difference(src, dst) == want
