"""One generic, lazy plugin registry, used for every plugin group.

At start-up a :class:`Registry` reads only entry-point *metadata* (names and dotted paths);
nothing is imported until a plugin is first asked for. Then the target is imported, checked
against its group's contract, and cached. Errors help: an unknown name lists the known ones, a
plugin whose optional dependency is missing names the package to install, and a plugin that
breaks its contract names the missing member.

In-tree plugins register through the project's own ``pyproject.toml`` entry points, exactly as a
third party does, so there is one path for everyone.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
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
    origin: str  #: the distribution that declared it, or "runtime"


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
                for ep in entry_points(group=self.group):
                    dist = getattr(ep, "dist", None)
                    origin = dist.name if dist is not None else "?"
                    if ep.name in infos and infos[ep.name].target != ep.value:
                        # Two packages claim one name: neither wins; asking for it says so.
                        clashes[ep.name] = PluginInfo(ep.name, ep.value, origin)
                        continue
                    infos[ep.name] = PluginInfo(ep.name, ep.value, origin)
                self._clashes = clashes
                self._infos = infos
            return self._infos

    def names(self) -> list[str]:
        """Every registered name, sorted (entry points and runtime registrations)."""
        return sorted(set(self._discover()) | set(self._runtime))

    def infos(self) -> list[PluginInfo]:
        found = dict(self._discover())
        for name, obj in self._runtime.items():
            found[name] = PluginInfo(name, _dotted(obj), "runtime")
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
        with self._lock:
            self._infos = None
        self._loaded.clear()


def _dotted(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    qual = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}:{qual}"
