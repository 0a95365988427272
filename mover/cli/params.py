"""Click options that many commands declare alike: a number of seconds, a count, a port.

Each helper is ``click.option`` with the type and the shown default that kind of option always
has, so that a command says only what differs (its names, default and help) and every
``--...-s`` option of every command reads and checks its value the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def seconds(*decls: str, default: float, help: str, minimum: float | None = None) -> Decorator:
    """A duration in seconds (a float; at least ``minimum`` when given), default shown."""
    kind = float if minimum is None else click.FloatRange(minimum)
    return click.option(*decls, type=kind, default=default, show_default=True, help=help)


def count(
    *decls: str, default: int, help: str, low: int | None = None, high: int | None = None
) -> Decorator:
    """A whole number (from ``low`` to ``high`` when either is given), default shown."""
    kind = int if low is None and high is None else click.IntRange(low, high)
    return click.option(*decls, type=kind, default=default, show_default=True, help=help)


def port(default: int) -> Decorator:
    """``--port`` of a command that serves HTTP (0: any free port)."""
    return count("--port", default=default, help="Port (0: any free one).", low=0, high=65535)


def stacked(*options: Decorator) -> Decorator:
    """The options as one decorator, in the order given (as if written one above the
    other): options that several commands share."""

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply
