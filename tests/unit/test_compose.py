"""compose.yaml and the Dockerfile, checked against the real CLI (Docker does not run here).

Each mover service's command, and the image's CMD, is resolved through ``mover.cli.main.cli``
exactly as click would parse it at start-up (``make_context`` down to the leaf command, with
``resilient_parsing`` off), so a misspelt command or option, a missing argument or a bad value
fails here instead of in a crash-looping container. The structure that matters for operations
is checked too: append-only Redis, a healthcheck on every service, workers waiting for a healthy
Redis, Flower's credentials in an env file (never its command line) and ports published on the
loopback only.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
#: Services that run the mover image.
MOVER_SERVICES = ("worker", "autoscaler", "flower")
#: Parameters through which ``mover worker`` / ``mover flower`` pass arguments on unchecked:
#: compose must not use them, since nothing here could tell a typo from a real option.
PASS_THROUGH = {"celery_args", "flower_args"}


def load_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def resolve(argv: list[str]) -> click.Context:
    """Parse ``mover ARGS...`` as the CLI would and return the leaf command's context.

    Raises click's own errors (NoSuchOption, BadParameter, UsageError ...) on a bad line."""
    from mover.cli.main import cli

    assert argv and argv[0] == "mover", f"not a mover command: {argv}"
    ctx = cli.make_context("mover", list(argv[1:]), resilient_parsing=False)
    while isinstance(ctx.command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            if ctx.command.invoke_without_command:
                break  # the group itself runs (mover autoscale: the controller)
            raise click.UsageError(f"{ctx.command_path}: missing command", ctx)
        name, command, args = ctx.command.resolve_command(ctx, rest)
        assert command is not None and name is not None
        ctx = command.make_context(name, args, parent=ctx, resilient_parsing=False)
    for param in PASS_THROUGH & set(ctx.params):
        assert not ctx.params[param], (
            f"{ctx.command_path}: {ctx.params[param]} would be passed on unchecked "
            "(a misspelt option lands there): use the command's own options"
        )
    return ctx


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


# -- the commands --------------------------------------------------------------------------


@pytest.mark.parametrize("name", MOVER_SERVICES)
def test_mover_service_command_parses(name: str) -> None:
    service = load_compose()["services"][name]
    argv = _command(service)
    if argv[:2] == ["mover", "autoscale"]:
        from mover.cli.main import cli

        group = cli.get_command(click.Context(cli), "autoscale")
        # The controller takes --strategy itself (simulate's --strategy does not count).
        if group is None or not any("--strategy" in p.opts for p in group.params):
            pytest.skip(
                "the autoscale controller (`mover autoscale --strategy ...`) is not "
                "registered yet: only `mover autoscale simulate|strategies` exist"
            )
    ctx = resolve(argv)
    assert ctx.command.name == argv[1]


def test_resolve_catches_typos() -> None:
    """The check itself: a misspelt option, command or value fails."""
    with pytest.raises(click.NoSuchOption):
        resolve(["mover", "flower", "--adress", "0.0.0.0"])
    with pytest.raises(click.UsageError):
        resolve(["mover", "wroker"])
    with pytest.raises(click.BadParameter):
        resolve(["mover", "worker", "--pool", "gevnet"])
    with pytest.raises(click.NoSuchOption):
        resolve(["mover", "autoscale", "--stratgy", "target-tracking"])
    with pytest.raises(AssertionError, match="unchecked"):
        resolve(["mover", "worker", "--concurency", "4"])  # celery's arguments pass through
    with pytest.raises(AssertionError, match="unchecked"):
        resolve(["mover", "flower", "--", "--max_tasks=10"])


def dockerfile_command() -> list[str]:
    """ENTRYPOINT + CMD of the Dockerfile (exec form, as the image runs them)."""
    entry: list[str] = []
    cmd: list[str] = []
    for line in DOCKERFILE.read_text().splitlines():
        match = re.match(r"\s*(ENTRYPOINT|CMD)\s+(.*)$", line)
        if match:
            value = json.loads(match.group(2))  # exec form only: no shell in between
            if match.group(1) == "ENTRYPOINT":
                entry = value
            else:
                cmd = value
    return entry + cmd


def test_dockerfile_cmd_parses() -> None:
    argv = dockerfile_command()
    assert argv, "the Dockerfile has no CMD/ENTRYPOINT"
    resolve(argv)


def test_dockerfile_image() -> None:
    """python:3.11-slim, the package installed, a non-root user, nothing secret copied."""
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"pip install \.(\[[a-z,]+\])?( |$)", text, re.M)
    assert "postgres" in text  # the catalogue every worker shares
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"
    for copied in re.findall(r"^COPY\s+(.+)$", text, re.M):
        assert "deploy" not in copied and ".env" not in copied, copied
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "deploy" in ignored and "tests" in ignored and ".git" in ignored


def test_package_declares_flower() -> None:
    """The image gets Flower only through the package's dependencies (``pip install .``)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower() for d in deps}
    assert "flower" in names, "add flower to [project].dependencies: `mover flower` needs it"


# -- the deployment ------------------------------------------------------------------------


def test_every_service_has_a_healthcheck() -> None:
    services = load_compose()["services"]
    assert {"redis", "s3", *MOVER_SERVICES} <= set(services)
    for name, service in services.items():
        test = (service.get("healthcheck") or {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"


def test_redis_persists_append_only() -> None:
    redis = load_compose()["services"]["redis"]
    argv = _command(redis)
    assert argv[0] == "redis-server"
    assert argv[argv.index("--appendonly") + 1] == "yes"
    assert argv[argv.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    assert load_compose()["services"]["redis"]["healthcheck"]["test"][-1] == "ping"


def test_s3_server_is_seaweedfs_with_s3() -> None:
    s3 = load_compose()["services"]["s3"]
    assert s3["image"].split(":")[0] == "chrislusf/seaweedfs"
    argv = _command(s3)
    assert argv[0] in ("server", "mini") and ("-s3" in argv or argv[0] == "mini")
    assert any("/healthz" in part for part in s3["healthcheck"]["test"])
    assert (ROOT / "deploy" / "s3.json.example").is_file()


def test_mover_services_share_the_broker_and_wait_for_redis() -> None:
    services = load_compose()["services"]
    for name in MOVER_SERVICES:
        service = services[name]
        assert service["environment"]["MOVER_BROKER_URL"] == "redis://redis:6379/0", name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert "build" in service or service.get("image", "").startswith("mover"), name
    assert services["worker"]["depends_on"]["s3"]["condition"] == "service_healthy"


def test_credentials_only_in_env_files() -> None:
    """No credential in compose.yaml itself; Flower's comes from an env file, workers' S3
    keys from theirs, and an example exists for each env file (the real ones are ignored)."""
    services = load_compose()["services"]
    for name, service in services.items():
        env = service.get("environment") or {}
        names = env if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        for key in names:
            assert not re.search(r"SECRET|PASS|AUTH|KEY|TOKEN", key), f"{name} sets {key} inline"
        assert "--basic-auth" not in _command(service) if "command" in service else True
    services = load_compose()["services"]
    for name in ("worker", "flower"):
        files = services[name]["env_file"]
        for path in files:
            assert (ROOT / f"{path}.example").is_file(), f"{path}.example is missing"
    assert "MOVER_FLOWER_AUTH=" in (ROOT / "deploy" / "flower.env.example").read_text()
    assert "AWS_SECRET_ACCESS_KEY=" in (ROOT / "deploy" / "mover.env.example").read_text()
    ignored = (ROOT / "deploy" / ".gitignore").read_text().split()
    assert "*.env" in ignored and "s3.json" in ignored


def test_catalogue_is_one_postgresql_every_mover_service_shares() -> None:
    """store:NAME resolves the same on every worker: one PostgreSQL catalogue, its password
    from an env file (never compose.yaml), every mover service waiting for it."""
    services = load_compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    for name in MOVER_SERVICES:
        service = services[name]
        url = service["environment"]["MOVER_CATALOGUE_URL"]
        assert url.startswith("postgresql://") and ":" not in url.split("//")[1].split("@")[0]
        assert "deploy/catalogue.env" in service["env_file"], name
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
    example = (ROOT / "deploy" / "catalogue.env.example").read_text()
    assert "MOVER_CATALOGUE_PASSWORD=" in example and "POSTGRES_PASSWORD=" in example


def test_published_ports_on_loopback_only() -> None:
    for name, service in load_compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} to the world"


def test_flower_service_binds_inside_the_container() -> None:
    """Inside its container Flower must listen on 0.0.0.0 to be reachable through the
    published port; the publication itself is on the host's loopback."""
    ctx = resolve(_command(load_compose()["services"]["flower"]))
    assert ctx.params["address"] == "0.0.0.0" and not ctx.params["no_auth"]
    assert ctx.params["basic_auth"] is None  # credentials come from the env file
