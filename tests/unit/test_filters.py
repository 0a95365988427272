"""rclone's filter semantics: includes first, then excludes, then an implicit exclude."""

from __future__ import annotations

import pytest

from mover.errors import UsageError
from mover.filters import Filters

PATHS = ["a.jpg", "a.png", "dir/b.jpg", "dir/sub/c.jpg", "dir/notes.txt", "top.txt", "x.JPG"]


def _selected(filters: Filters) -> list[str]:
    return [p for p in PATHS if filters.allows(p)]


@pytest.mark.parametrize(
    ("include", "exclude", "want"),
    [
        ((), (), PATHS),
        (("*.jpg",), (), ["a.jpg", "dir/b.jpg", "dir/sub/c.jpg"]),
        (("/*.jpg",), (), ["a.jpg"]),
        ((), ("*.jpg",), ["a.png", "dir/notes.txt", "top.txt", "x.JPG"]),
        ((), ("dir/",), ["a.jpg", "a.png", "top.txt", "x.JPG"]),
        (("dir/**",), (), ["dir/b.jpg", "dir/sub/c.jpg", "dir/notes.txt"]),
        (("*.{jpg,png}",), (), ["a.jpg", "a.png", "dir/b.jpg", "dir/sub/c.jpg"]),
        (("sub/*.jpg",), (), ["dir/sub/c.jpg"]),
        (("?.jpg",), (), ["a.jpg", "dir/b.jpg", "dir/sub/c.jpg"]),
        (("[ab].*",), (), ["a.jpg", "a.png", "dir/b.jpg"]),
        (("[!ab].*",), (), ["dir/sub/c.jpg", "x.JPG"]),
        # An include is tested before every exclude (rclone): dir/b.jpg stays.
        (("*.jpg",), ("dir/**",), ["a.jpg", "dir/b.jpg", "dir/sub/c.jpg"]),
        ((), ("*.txt", "/a.*"), ["dir/b.jpg", "dir/sub/c.jpg", "x.JPG"]),
    ],
)
def test_rclone_semantics(include: tuple[str, ...], exclude: tuple[str, ...], want: list[str]):
    assert _selected(Filters(include, exclude)) == want


@pytest.mark.parametrize("bad", ["", "[abc", "{a,b", "trailing\\"])
def test_bad_pattern_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError):
        Filters(include=(bad,))


def test_forms() -> None:
    assert Filters.of("*.jpg", None) == Filters(("*.jpg",), ())
    assert not Filters.of(None, None)
    assert Filters.of(["a"], ["b"]).to_dict() == {"include": ["a"], "exclude": ["b"]}
