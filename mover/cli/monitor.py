"""``mover metrics`` and ``mover dashboard``: watch the fleet from Prometheus or a browser.

Both read the fleet from Redis and the broker (``MOVER_BROKER_URL``; job records and statistics
from ``MOVER_JOBS_URL`` when set) at every look (:mod:`mover.monitor.view`), and serve it over
HTTP with the standard library's server (:mod:`mover.monitor.web`). Safe defaults, as
``mover flower``:

- bound to **127.0.0.1** unless ``--address`` says otherwise;
- ``mover dashboard`` needs **basic auth** (``MOVER_DASHBOARD_AUTH=USER:PASS``, or
  ``--basic-auth``, visible in ``ps``) unless ``--no-auth`` is given on purpose; ``mover
  metrics`` serves Prometheus without it by default (Prometheus's custom), or with it when
  ``MOVER_METRICS_AUTH`` / ``--basic-auth`` is set (Prometheus's ``basic_auth`` scrape option);
- no secret in anything served (store keys, ids, URLs without query strings).

Run alone with ``python -m mover.cli.monitor``; the main CLI attaches both commands.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import click

from mover.cli.flower import check_credentials
from mover.cli.params import count, port, seconds, stacked
from mover.errors import MoverError

METRICS_AUTH_ENV = "MOVER_METRICS_AUTH"
DASHBOARD_AUTH_ENV = "MOVER_DASHBOARD_AUTH"
DEFAULT_METRICS_PORT = 9808
DEFAULT_DASHBOARD_PORT = 8808


def _fail(message: str) -> None:
    click.echo(f"mover: {message}", err=True)
    sys.exit(1)


#: Options of the look at the fleet, the same for metrics and the dashboard.
_reader_options = stacked(
    click.option(
        "--address",
        default="127.0.0.1",
        show_default=True,
        help="Address to bind (0.0.0.0 exposes it to the network).",
    ),
    click.option(
        "--basic-auth",
        "basic_auth",
        metavar="USER:PASS",
        help="Credentials (several: comma-separated). Prefer the environment variable: "
        "a command-line argument is visible in ps.",
    ),
    count(
        "--max-jobs",
        default=50,
        low=0,
        high=10_000,
        help="Newest jobs looked at; only those not finished, or finished within "
        "--recent, are shown (this bounds the job_id label).",
    ),
    seconds(
        "--recent", "recent_s", default=900.0, minimum=0, help="Seconds a finished job stays shown."
    ),
    seconds(
        "--rate-window",
        "rate_window_s",
        default=10.0,
        minimum=1,
        help="Seconds of recent chunks that bytes/s figures cover.",
    ),
    seconds(
        "--inspect-interval",
        "inspect_interval_s",
        default=5.0,
        minimum=0,
        help="Seconds between two inspect() of the workers (pools, busy slots); 0: none.",
    ),
    click.option(
        "-Q",
        "--queue",
        "queues",
        multiple=True,
        help="A queue to show even when idle (repeatable; default: the workers' default "
        "queues). Queues that workers consume or that hold messages always show.",
    ),
    click.option(
        "--local-jobs/--no-local-jobs",
        default=False,
        show_default=True,
        help="Also show this host's embedded jobs (the SQLite job store).",
    ),
)


def credentials_for(basic_auth: str | None, env: str, no_auth: bool, required: bool) -> str | None:
    """The credentials to enforce, or None; a click error when they are wrong or missing."""
    credentials = basic_auth or os.environ.get(env) or None
    if credentials and no_auth:
        raise click.UsageError(f"--no-auth and credentials ({env} or --basic-auth) conflict")
    if credentials:
        return check_credentials(credentials)
    if required and not no_auth:
        raise click.UsageError(
            f"the dashboard needs credentials: set {env}=USER:PASS (or --basic-auth "
            "USER:PASS); --no-auth serves it open, on purpose only"
        )
    return None


def make_reader(options: dict[str, Any]) -> Any:
    """A :class:`~mover.monitor.view.FleetReader` from the command's options."""
    from mover.config import broker_url, jobs_url
    from mover.jobstores.sqlite import default_path
    from mover.monitor.view import FleetReader

    return FleetReader(
        broker_url(),
        jobs_url(),
        max_jobs=options["max_jobs"],
        recent_s=options["recent_s"],
        queues=list(options["queues"]) or None,
        rate_window_s=options["rate_window_s"],
        inspect_interval_s=options["inspect_interval_s"],
        sqlite_path=default_path() if options["local_jobs"] else None,
    )


def serve(name: str, address: str, port: int, routes: dict[str, Any], credentials: str | None):
    """Bind (a clear error when the port is taken), print where, serve until SIGTERM/SIGINT."""
    from mover.executors.celery_app import broker_url
    from mover.monitor.view import redis_where
    from mover.monitor.web import MonitorServer

    try:
        server = MonitorServer(address, port, routes, credentials, realm=f"mover {name}")
    except OSError as exc:
        raise MoverError(
            f"mover {name}: cannot listen on {address}:{port} ({exc.strerror or exc}): "
            "choose another --port or --address"
        ) from None

    def stop(_signum: int, _frame: Any) -> None:
        import threading

        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host = f"[{address}]" if ":" in address else address
    auth = "basic auth" if credentials else "no authentication"
    click.echo(
        f"mover {name}: http://{host}:{server.port}/ ({auth}), fleet at "
        f"{redis_where(broker_url())}",
        err=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()


@click.command("metrics", context_settings={"help_option_names": ["-h", "--help"]})
@port(DEFAULT_METRICS_PORT)
@_reader_options
def metrics_command(port: int, address: str, basic_auth: str | None, **options: Any) -> None:
    """Serve the fleet's Prometheus metrics on /metrics.

    Every scrape reads queues (every priority band, unacked, consumers, oldest message age),
    jobs (state, objects, chunks, bytes, rate, ETA), stores (bytes in and out, streams,
    errors by class, retries), worker pools and the autoscaler's last decision from Redis and
    the broker; an unreachable Redis answers mover_up 0 at once. Bound to 127.0.0.1 unless
    --address says otherwise; basic auth when MOVER_METRICS_AUTH (or --basic-auth) is set.
    """
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

    from mover.monitor.collector import registry_for
    from mover.monitor.web import Reply

    credentials = credentials_for(basic_auth, METRICS_AUTH_ENV, no_auth=False, required=False)
    try:
        reader = make_reader(options)
        registry = registry_for(reader)
        routes = {
            "/metrics": lambda _p: Reply(generate_latest(registry), CONTENT_TYPE_LATEST),
            "/": lambda _p: Reply(b"mover metrics: see /metrics\n"),
        }
        serve("metrics", address, port, routes, credentials)
    except MoverError as exc:
        _fail(exc.message)


@click.command("dashboard", context_settings={"help_option_names": ["-h", "--help"]})
@port(DEFAULT_DASHBOARD_PORT)
@click.option(
    "--no-auth", is_flag=True, help="Serve without authentication (refused unless given)."
)
@click.option(
    "--flower-url",
    default="http://127.0.0.1:5555/",
    show_default=True,
    help="Where the page links for task detail (mover flower).",
)
@seconds(
    "--refresh",
    "refresh_s",
    default=1.0,
    minimum=0.2,
    help="Seconds between two looks at the fleet (and two updates of the page).",
)
@_reader_options
def dashboard_command(
    port: int,
    address: str,
    basic_auth: str | None,
    no_auth: bool,
    flower_url: str,
    refresh_s: float,
    **options: Any,
) -> None:
    """Serve a live, read-only web page of the fleet.

    Jobs with progress bars, rate and ETA; queues with depth and oldest message age over the
    last minutes; workers and their pools; stores and their throughput; the autoscaler's
    decisions; a link to Flower. Basic auth is on by default (MOVER_DASHBOARD_AUTH=USER:PASS),
    bound to 127.0.0.1 unless --address says otherwise.
    """
    from mover.monitor.dashboard import Dashboard

    credentials = credentials_for(basic_auth, DASHBOARD_AUTH_ENV, no_auth, required=True)
    if not credentials:
        click.echo(
            "mover dashboard: WARNING: no authentication (--no-auth); anyone who reaches "
            f"{address}:{port} sees the fleet",
            err=True,
        )
    try:
        dashboard = Dashboard(make_reader(options), refresh_s=refresh_s, flower_url=flower_url)
        dashboard.start()
        serve("dashboard", address, port, dashboard.routes(), credentials)
    except MoverError as exc:
        _fail(exc.message)


if __name__ == "__main__":
    metrics_command()
