"""The plugin registry and the dispatcher's choice of strategy."""

from __future__ import annotations

import pytest

from mover import dispatcher
from mover.errors import NoStrategy, PluginLoadError, UnknownPlugin
from mover.location import parse
from mover.motion import Endpoint, MotionStrategy, Priority
from mover.registry import Registry
from mover.resolve import open_location, providers


def _endpoints(src: str, dst: str, size: int | None = 10) -> tuple[Endpoint, Endpoint]:
    from mover.provider import ObjectInfo

    s_store, s_loc = open_location(src)
    d_store, d_loc = open_location(dst)
    return Endpoint(s_store, s_loc, ObjectInfo(s_loc.full_key, size)), Endpoint(d_store, d_loc)


def test_unknown_scheme_lists_known_ones() -> None:
    with pytest.raises(UnknownPlugin, match=r"unknown provider 'swfit' \(known: .*file.*\)"):
        providers.get("swfit")


def test_missing_optional_dependency_names_the_package() -> None:
    if "broken" not in providers:
        pytest.fail("the test plugin did not load (tests/testplugin.py)")
    with pytest.raises(PluginLoadError, match="pip install vendorx_sdk_not_installed"):
        providers.get("broken")


def test_duplicate_registration_needs_clobber() -> None:
    reg: Registry[object] = Registry("mover.test-only", "thing")
    reg.register("a", object())
    with pytest.raises(PluginLoadError, match="already registered"):
        reg.register("a", object())
    reg.register("a", object(), clobber=True)


def test_contract_is_checked_on_load() -> None:
    reg: Registry[object] = Registry("mover.test-only", "thing", required=("plan",))
    with pytest.raises(PluginLoadError, match="missing plan"):
        reg.register("b", object())


def test_file_to_file_picks_local(tmp_path) -> None:
    (tmp_path / "a").write_bytes(b"x")
    src, dst = _endpoints(str(tmp_path / "a"), str(tmp_path / "b"))
    strategy, prio = dispatcher.choose(src, dst)
    assert (strategy.name, prio) == ("local", Priority.OPTIMIZED)


def test_file_to_memory_streams_and_stdin_falls_back(tmp_path) -> None:
    src, dst = _endpoints(str(tmp_path / "a"), "memory://m/b")
    assert dispatcher.choose(src, dst)[0].name == "streaming"
    src, dst = _endpoints("-", "memory://m/b", size=None)
    assert dispatcher.choose(src, dst)[0].name == "single-stream"


def test_no_strategy_for_a_read_only_destination() -> None:
    src, dst = _endpoints("memory://m/a", "-", size=None)
    # stdout takes a stream; a memory source can stream: single-stream handles it.
    assert dispatcher.choose(src, dst)[0].name == "single-stream"


class _Tie(MotionStrategy):
    summary = "test"

    def can_handle(self, source, destination):
        return Priority.HIGHEST

    def plan(self, *a):  # pragma: no cover - never run
        raise AssertionError

    run_chunk = commit = abort = plan


def test_ties_go_to_the_first_name_in_stable_order(tmp_path) -> None:
    a, b = type("A", (_Tie,), {"name": "zz-tie"}), type("B", (_Tie,), {"name": "aa-tie"})
    dispatcher.strategies.register("zz-tie", a)
    dispatcher.strategies.register("aa-tie", b)
    try:
        src, dst = _endpoints(str(tmp_path / "a"), "memory://m/b")
        assert dispatcher.choose(src, dst)[0].name == "aa-tie"
        ranking = dispatcher.rank(src, dst)
        assert [c.name for c in ranking[:2]] == ["aa-tie", "zz-tie"]
    finally:
        dispatcher.strategies.unregister("zz-tie")
        dispatcher.strategies.unregister("aa-tie")


def test_cant_handle_everywhere_is_a_clear_error(monkeypatch) -> None:
    src, dst = _endpoints("memory://m/a", "memory://m/b")
    for name in dispatcher.strategies.names():
        monkeypatch.setattr(
            type(dispatcher.get_strategy(name)), "can_handle", lambda *a: Priority.CANT_HANDLE
        )
    with pytest.raises(NoStrategy, match="no motion strategy can move"):
        dispatcher.choose(src, dst)


def test_parse_is_protocol_agnostic() -> None:
    loc = parse("vendorq://bucket/a/b")
    assert loc.scheme == "vendorq" and loc.store == "bucket"
