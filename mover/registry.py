"""One generic, lazy plugin registry, used for every plugin group.

At start-up a :class:`Registry` reads only entry-point *metadata* (names and dotted paths);
nothing is imported until a plugin is first asked for. Then the target is imported, checked
against its group's contract, and cached. Errors help: an unknown name lists the known ones, a
plugin whose optional dependency is missing names the package to install, and a plugin that
breaks its contract names the missing member.

In-tree plugins register through the project's own ``pyproject.toml`` entry points, exactly as a
third party does, so there is one path for everyone.

The metadata is read by :func:`entry_points`, which finds what ``importlib.metadata`` finds
(every ``*.dist-info`` / ``*.egg-info`` folder on ``sys.path``, the first of each distribution
name winning) in a fraction of its cost: every command starts here, and ``importlib.metadata``
costs about 25 ms (it imports the email package and parses each distribution's METADATA for its
name). Where ``sys.path`` holds something else (a zip file, a finder of its own) it is asked
instead.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Generic, TypeVar

from mover.errors import PluginLoadError, UnknownPlugin

T = TypeVar("T")

#: Entry-point groups mover reads, one per plugin kind.
PROVIDERS = "mover.providers"
MOTION = "mover.motion"
AUTOSCALE = "mover.autoscale"
LAUNCHERS = "mover.launchers"
PLACEMENT = "mover.placement"

#: Import names whose PyPI distribution has another name, for "pip install" hints.
_PIP_NAMES = {
    "swiftclient": "python-swiftclient",
    "yaml": "pyyaml",
    "google": "smart_open[gcs]",
    "azure": "smart_open[azure]",
    "paramiko": "smart_open[ssh]",
}


@dataclass(frozen=True)
class PluginInfo:
    """What the registry knows of one plugin without importing it."""

    name: str
    target: str  #: ``module:attr``
    #: the metadata folder that declared it ("" for a runtime registration)
    dist: str = ""
    #: the distribution's name when already known (importlib's discovery, runtime)
    known_origin: str = ""

    @cached_property
    def origin(self) -> str:
        """The distribution that declared it, or "runtime" (read from its metadata on first
        use: only messages and listings need it)."""
        if self.known_origin:
            return self.known_origin
        return _distribution_name(self.dist) if self.dist else "runtime"


#: One entry point: (name, value, metadata folder or "", distribution name or "").
_Entry = tuple[str, str, str, str]
_NAME_RUN = re.compile(r"[-_.]+")
_scan_lock = threading.Lock()
_scanned: dict[tuple[str, ...], dict[str, list[_Entry]]] = {}


def entry_points(group: str) -> list[_Entry]:
    """Every entry point of ``group``, in the order ``importlib.metadata`` lists them. One
    pass over ``sys.path`` serves every group; it is made again when ``sys.path`` changes."""
    key = tuple(sys.path)
    with _scan_lock:
        groups = _scanned.get(key)
        if groups is None:
            _scanned.clear()
            groups = _scanned[key] = _scan_all() if _plain_paths() else _scan_importlib()
    return groups.get(group, [])


def forget_entry_points() -> None:
    """Read the metadata again on next use (after installing a plugin at run time)."""
    with _scan_lock:
        _scanned.clear()


def _plain_paths() -> bool:
    """True when every distribution is a folder on ``sys.path`` (no zip, no finder of its
    own), so that :func:`_scan_all` finds exactly what ``importlib.metadata`` would."""
    for finder in sys.meta_path:
        if hasattr(finder, "find_distributions") and getattr(finder, "__name__", "") != (
            "PathFinder"
        ):
            return False
    return not any(entry and os.path.isfile(entry) for entry in sys.path)


def _scan_all() -> dict[str, list[_Entry]]:
    """Entry points by group from the metadata folders on ``sys.path``: within a folder,
    distributions in listing order; across folders, the first of a (normalised) name wins."""
    groups: dict[str, list[_Entry]] = {}
    seen: set[str] = set()
    for entry in sys.path:
        try:
            children = os.listdir(entry or ".")
        except OSError:
            continue
        found: dict[str, list[str]] = {}
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")):
                name = _NAME_RUN.sub("_", low.rpartition(".")[0].partition("-")[0])
                found.setdefault(name, []).append(os.path.join(entry, child))
        for name, folders in found.items():
            if name in seen:
                continue
            seen.add(name)
            _read_entry_points(folders[0], groups)
    return groups


def _read_entry_points(folder: str, groups: dict[str, list[_Entry]]) -> None:
    """Add ``folder``'s ``entry_points.txt`` to ``groups`` (as importlib parses it: ``[group]``
    headers, ``name = value`` lines, ``#`` comments)."""
    try:
        with open(os.path.join(folder, "entry_points.txt"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return
    section: list[_Entry] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = groups.setdefault(line.strip("[]"), [])
        elif section is not None and "=" in line:
            name, value = (part.strip() for part in line.split("=", 1))
            section.append((name, value, folder, ""))


def _scan_importlib() -> dict[str, list[_Entry]]:
    from importlib.metadata import entry_points as all_entry_points

    groups: dict[str, list[_Entry]] = {}
    for group in all_entry_points().groups:
        for ep in all_entry_points(group=group):
            dist = getattr(ep, "dist", None)
            origin = dist.name if dist is not None else "?"
            groups.setdefault(group, []).append((ep.name, ep.value, "", origin))
    return groups


def _distribution_name(folder: str) -> str:
    """The ``Name:`` of a distribution's METADATA (PKG-INFO for an egg), "?" if unreadable."""
    for leaf in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(folder, leaf), encoding="utf-8") as f:
                for line in f:
                    if not line.strip():
                        break  # the headers end at the first blank line
                    if line.lower().startswith("name:"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            continue
    return "?"


class Registry(Generic[T]):
    """A named, lazily loaded set of plugins of one kind.

    Parameters:
        group (str): the entry-point group, e.g. ``"mover.providers"``.
        kind (str): the word used in messages, e.g. ``"provider"``.
        required (tuple[str, ...]): attributes every plugin must have; checked on first load.
        contract (type | None): the contract's base class: a plugin must be a subclass of it
            (or, with ``instances``, an instance of it).
        instances (bool): whether an instance of ``contract`` is a plugin too (default True).
        validate (callable | None): an extra check of the loaded object that raises
            ``TypeError`` with a message when the plugin breaks the contract.
    """

    def __init__(
        self,
        group: str,
        kind: str,
        required: tuple[str, ...] = (),
        validate: Callable[[Any], None] | None = None,
        contract: type | None = None,
        instances: bool = True,
    ) -> None:
        self.group = group
        self.kind = kind
        self.required = required
        self.contract = contract
        self.instances = instances
        self._validate = validate
        self._lock = threading.Lock()
        self._infos: dict[str, PluginInfo] | None = None
        self._clashes: dict[str, PluginInfo] = {}
        self._loaded: dict[str, T] = {}
        self._runtime: dict[str, T] = {}

    # -- discovery -------------------------------------------------------------------------

    def _discover(self) -> dict[str, PluginInfo]:
        with self._lock:
            if self._infos is None:
                infos: dict[str, PluginInfo] = {}
                clashes: dict[str, PluginInfo] = {}
                for name, value, folder, origin in entry_points(self.group):
                    info = PluginInfo(name, value, folder, origin)
                    if name in infos and infos[name].target != value:
                        # Two packages claim one name: neither wins; asking for it says so.
                        clashes[name] = info
                        continue
                    infos[name] = info
                self._clashes = clashes
                self._infos = infos
            return self._infos

    def names(self) -> list[str]:
        """Every registered name, sorted (entry points and runtime registrations)."""
        return sorted(set(self._discover()) | set(self._runtime))

    def infos(self) -> list[PluginInfo]:
        found = dict(self._discover())
        for name, obj in self._runtime.items():
            found[name] = PluginInfo(name, _dotted(obj), known_origin="runtime")
        return [found[n] for n in sorted(found)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    # -- registration ----------------------------------------------------------------------

    def register(self, name: str, plugin: T, *, clobber: bool = False) -> None:
        """Register a plugin object at run time (tests, embedding applications).

        A name that is already registered is refused unless ``clobber`` is true, so that two
        plugins never silently fight over one scheme.
        """
        if not clobber and name in self.names():
            raise PluginLoadError(
                f"{self.kind} {name!r} is already registered in {self.group}; "
                "pass clobber=True to replace it"
            )
        self._check(name, plugin)
        self._runtime[name] = plugin
        self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        self._runtime.pop(name, None)
        self._loaded.pop(name, None)

    # -- loading ---------------------------------------------------------------------------

    def get(self, name: str) -> T:
        """Return the plugin called ``name``, importing it on first use."""
        if name in self._runtime:
            return self._runtime[name]
        if name in self._loaded:
            return self._loaded[name]
        info = self._discover().get(name)
        if info is None:
            known = ", ".join(self.names()) or "none"
            raise UnknownPlugin(f"unknown {self.kind} {name!r} (known: {known})")
        other = self._clashes.get(name)
        if other is not None:
            raise PluginLoadError(
                f"{self.kind} {name!r} is declared twice in {self.group}: by {info.origin} "
                f"({info.target}) and by {other.origin} ({other.target}); uninstall one of "
                "the two packages"
            )
        plugin = self._import(info)
        self._check(name, plugin)
        self._loaded[name] = plugin
        return plugin

    def load_all(self) -> Iterator[tuple[str, T | None, Exception | None]]:
        """Yield ``(name, plugin, error)`` for every plugin; a broken one yields its error."""
        for name in self.names():
            try:
                yield name, self.get(name), None
            except PluginLoadError as exc:
                yield name, None, exc

    def _import(self, info: PluginInfo) -> T:
        module_name, _, attr = info.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "?").split(".")[0]
            if module_name == exc.name or module_name.startswith(f"{exc.name}."):
                raise PluginLoadError(
                    f"{self.kind} {info.name!r} points at module {module_name!r}, which does "
                    f"not exist (declared by {info.origin} in {self.group})"
                ) from exc
            pip = _PIP_NAMES.get(missing, missing)
            raise PluginLoadError(
                f"{self.kind} {info.name!r} needs {missing}: pip install {pip}"
            ) from exc
        except Exception as exc:
            raise PluginLoadError(
                f"{self.kind} {info.name!r} failed to import ({module_name}): {exc}"
            ) from exc
        obj: Any = module
        for part in filter(None, attr.split(".")):
            try:
                obj = getattr(obj, part)
            except AttributeError as exc:
                raise PluginLoadError(
                    f"{self.kind} {info.name!r}: {module_name} has no attribute {attr!r}"
                ) from exc
        return obj

    def _check(self, name: str, plugin: Any) -> None:
        missing = [m for m in self.required if not hasattr(plugin, m)]
        if missing:
            raise PluginLoadError(
                f"{self.kind} {name!r} ({_dotted(plugin)}) breaks the {self.group} contract: "
                f"missing {', '.join(missing)}"
            )
        if self.contract is not None and not (
            (isinstance(plugin, type) and issubclass(plugin, self.contract))
            or (self.instances and isinstance(plugin, self.contract))
        ):
            what = f"{self.contract.__module__}.{self.contract.__qualname__}"
            raise PluginLoadError(
                f"{self.kind} {name!r} ({_dotted(plugin)}) breaks the {self.group} contract: "
                f"not a subclass of {what}" + (" nor an instance of it" if self.instances else "")
            )
        if self._validate is not None:
            try:
                self._validate(plugin)
            except TypeError as exc:
                raise PluginLoadError(f"{self.kind} {name!r} ({_dotted(plugin)}): {exc}") from exc

    def reset(self) -> None:
        """Forget discovered entry points (after installing a plugin at run time)."""
        forget_entry_points()
        with self._lock:
            self._infos = None
        self._loaded.clear()


def _dotted(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    qual = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}:{qual}"
