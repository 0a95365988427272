"""``mover flower``: Flower 2.2 on the fleet's broker, with basic auth on by default.

A thin wrapper of ``celery -A mover.workers.app flower``. What it adds is the safe defaults an
operator would otherwise have to remember:

- **Authentication on by default.** Credentials come from ``--basic-auth USER:PASS`` or, better,
  the environment variable ``MOVER_FLOWER_AUTH`` (an env file in compose.yaml). Several users
  are separated by commas (``alice:pw1,bob:pw2``; a password cannot contain a comma, Flower
  splits on it). Without credentials the command refuses to start, unless ``--no-auth`` is
  given explicitly (then it warns: Flower can revoke and terminate tasks).
- **Credentials never on a command line.** They reach Flower through its environment variable
  ``FLOWER_BASIC_AUTH``, not ``--basic-auth``, so they do not show in ``ps`` or
  ``/proc/PID/cmdline`` (readable by every local user); ``/proc/PID/environ`` is readable only
  by the same user and root. ``--basic-auth`` given to *this* command is visible in ``ps`` for
  the instant before the exec; prefer ``MOVER_FLOWER_AUTH``.
- **Bound to 127.0.0.1 by default.** Expose it on purpose (``--address 0.0.0.0`` in a
  container behind a proxy), not by accident.

What Flower shows and what it does not (shared/CELERY-FACTS.md): mover's task arguments are job
ids and indexes, never a URL with a secret or a credential, so ``/api/tasks``, ``/api/workers``
(reserved and active tasks in raw form) and the worker pages hold nothing secret. ``/metrics``
and ``/healthcheck`` answer without authentication (Flower's design): they show task names,
worker names and counts. Per-job progress is not in Flower (custom task states do not show
there): use ``mover status JOB``.

The broker is ``MOVER_BROKER_URL`` (as for ``mover worker``); Flower reads Redis queue lengths
directly, so ``--broker-api`` is not needed. Arguments after ``--`` go to Flower unchanged
(e.g. ``-- --max_tasks=50000 --purge_offline_workers=600``), except authentication options,
which are refused there for the reason above.
"""

from __future__ import annotations

import os
import sys

import click

#: The environment variable holding ``USER:PASS[,USER2:PASS2]``.
AUTH_ENV = "MOVER_FLOWER_AUTH"
#: Flower reads ``FLOWER_<OPTION>`` variables as options; this is how credentials travel.
FLOWER_AUTH_ENV = "FLOWER_BASIC_AUTH"
DEFAULT_PORT = 5555
DEFAULT_ADDRESS = "127.0.0.1"
#: Flower options that carry credentials: refused among the pass-through arguments.
_SECRET_OPTIONS = ("--basic_auth", "--basic-auth", "--oauth2_secret", "--oauth2-secret")


def check_credentials(value: str) -> str:
    """Validate ``USER:PASS[,USER:PASS...]``; return it unchanged or raise click.BadParameter.

    The message never repeats the value (it holds a password)."""
    pairs = value.split(",")
    for n, pair in enumerate(pairs, 1):
        user, sep, password = pair.partition(":")
        if not sep or not user.strip() or not password:
            where = f" (entry {n} of {len(pairs)})" if len(pairs) > 1 else ""
            raise click.BadParameter(
                f"credentials must be USER:PASS{where}, several separated by commas; "
                "neither part empty, no comma inside a password"
            )
    return value


def flower_argv(port: int, address: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The argv of the Flower process: no credential in it, ever."""
    argv = [sys.executable, "-m", "celery", "-A", "mover.workers.app", "flower"]
    argv += [f"--port={port}", f"--address={address}", *extra]
    return argv


def flower_env(credentials: str | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the Flower process: credentials in ``FLOWER_BASIC_AUTH`` only.

    ``MOVER_FLOWER_AUTH`` is dropped (one copy of a secret is enough), and so is any
    ``FLOWER_BASIC_AUTH`` inherited when ``credentials`` is None (``--no-auth`` means none)."""
    env = dict(os.environ if base is None else base)
    env.pop(AUTH_ENV, None)
    env.pop(FLOWER_AUTH_ENV, None)
    if credentials:
        env[FLOWER_AUTH_ENV] = credentials
    return env


# Unknown options are errors (a typo must not reach Flower silently); Flower's own options
# go after "--", where click takes them as arguments.
@click.command("flower", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True, help="Port."
)
@click.option(
    "--address",
    default=DEFAULT_ADDRESS,
    show_default=True,
    help="Address to bind (0.0.0.0 exposes Flower to the network).",
)
@click.option(
    "--basic-auth",
    "basic_auth",
    metavar="USER:PASS",
    help=f"Credentials (several: comma-separated). Prefer the environment variable {AUTH_ENV}: "
    "a command-line argument is visible in ps.",
)
@click.option(
    "--no-auth",
    is_flag=True,
    help="Run without authentication (refused unless given; Flower can revoke tasks).",
)
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
def flower_command(
    port: int,
    address: str,
    basic_auth: str | None,
    no_auth: bool,
    flower_args: tuple[str, ...],
) -> None:
    """Run Flower on the fleet's broker (a thin wrapper of ``celery -A mover.workers.app flower``).

    Basic auth is on by default: credentials come from --basic-auth or MOVER_FLOWER_AUTH and
    reach Flower through its environment, never its command line. Bound to 127.0.0.1 unless
    --address says otherwise. The broker is MOVER_BROKER_URL. Arguments after -- go to Flower.
    """
    for arg in flower_args:
        if arg.split("=", 1)[0] in _SECRET_OPTIONS:
            raise click.UsageError(
                f"{arg.split('=', 1)[0]} is not passed through (it would show in ps): "
                f"use --basic-auth or {AUTH_ENV}"
            )
    credentials = basic_auth or os.environ.get(AUTH_ENV) or None
    if credentials and no_auth:
        raise click.UsageError(f"--no-auth and credentials ({AUTH_ENV} or --basic-auth) conflict")
    if credentials:
        check_credentials(credentials)
    elif not no_auth:
        raise click.UsageError(
            f"Flower needs credentials: set {AUTH_ENV}=USER:PASS (or --basic-auth USER:PASS); "
            "--no-auth runs it open, on purpose only"
        )
    else:
        click.echo(
            "mover flower: WARNING: no authentication (--no-auth); anyone who reaches "
            f"{address}:{port} sees the fleet (Flower keeps /api/* closed unless "
            "FLOWER_UNAUTHENTICATED_API is set)",
            err=True,
        )
    argv = flower_argv(port, address, flower_args)
    env = flower_env(credentials)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


if __name__ == "__main__":
    flower_command()
