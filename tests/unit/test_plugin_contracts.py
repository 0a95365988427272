"""The one registry helper holds every plugin kind to its contract: two packages claiming one
name is an error naming both, a provider is checked when registered, and a capability a
provider declares must be implemented."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mover.errors import PluginLoadError
from mover.location import parse
from mover.provider import Capabilities, StoreProvider, check_capabilities, providers, unimplemented
from mover.registry import Registry

GROUP = "mover.test-duplicates"


def _dist(root: Path, name: str, target: str) -> None:
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\nsame = {target}\n")


@pytest.fixture
def two_packages(tmp_path: Path) -> Iterator[None]:
    _dist(tmp_path, "vendor-one", "json:dumps")
    _dist(tmp_path, "vendor-two", "json:loads")
    sys.path.insert(0, str(tmp_path))
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))


def test_a_name_two_packages_declare_is_an_error_naming_both(two_packages: None):
    registry: Registry[object] = Registry(GROUP, "widget")
    assert registry.names() == ["same"]
    with pytest.raises(PluginLoadError) as err:
        registry.get("same")
    assert "vendor-one" in str(err.value) and "vendor-two" in str(err.value)
    assert "json:dumps" in str(err.value) and "json:loads" in str(err.value)


class _NoStat(StoreProvider):
    scheme = "nostat"

    def list(self, prefix: str):  # type: ignore[override]
        return iter(())

    def delete(self, key: str) -> None:
        pass


class _Liar(_NoStat):
    """Declares ranged reads (the default) and implements neither stat's fellows nor
    read_into."""

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    def stat(self, key: str):  # type: ignore[override]
        raise NotImplementedError


def test_a_provider_is_checked_against_its_contract_when_registered():
    with pytest.raises(PluginLoadError, match="missing open, capabilities"):
        providers.register("not-a-provider", object)  # type: ignore[arg-type]
    with pytest.raises(PluginLoadError, match="does not implement stat"):
        providers.register("nostat", _NoStat)
    fake = type("Fake", (), {m: None for m in providers.required})
    with pytest.raises(PluginLoadError, match=r"not a subclass of mover\.provider\.StoreProvider"):
        providers.register("fake", fake)
    assert "nostat" not in providers.names()


def test_a_declared_capability_must_be_implemented():
    liar = _Liar(parse("memory://b/"), {})
    assert unimplemented(liar) == ["ranged_read (read_into)"]
    with pytest.raises(PluginLoadError, match="declares ranged_read"):
        check_capabilities(liar)


def test_every_in_tree_provider_keeps_its_capabilities(tmp_path: Path):
    from mover.resolve import open_location

    for url in ("memory://b/x", f"file://{tmp_path}/x", "http://127.0.0.1:9/x", "-"):
        store, _ = open_location(url)
        assert unimplemented(store) == [], url


def test_the_dispatcher_holds_stores_to_their_capabilities():
    from mover import dispatcher
    from mover.motion import Endpoint

    liar = _Liar(parse("memory://b/"), {})
    honest, loc = _open("memory://b/x")
    with pytest.raises(PluginLoadError, match="declares ranged_read"):
        dispatcher.rank(Endpoint(liar, loc), Endpoint(honest, loc))


def _open(url: str):
    from mover.resolve import open_location

    return open_location(url)
