"""The fleet's service settings (``[fleet]`` in the configuration, passwords from the
environment only) and the catalogue's backend seam (targets, migrations)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from mover import config as config_mod
from mover.catalogue import backends
from mover.catalogue.store import Catalogue
from mover.errors import ConfigError
from mover.redact import redact


def _write_config(text: str) -> Path:
    path = Path(os.environ["MOVER_CONFIG"])
    path.write_text(text)
    return path


def test_fleet_urls_come_from_the_file_with_the_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _write_config(
        '[fleet]\nbroker_url = "amqp://mover@rabbit:5672/v"\njobs_url = "rediss://redis:6380/0"\n'
    )
    monkeypatch.delenv("MOVER_BROKER_URL", raising=False)
    monkeypatch.delenv("MOVER_JOBS_URL", raising=False)
    assert config_mod.fleet_setting("broker_url") == "amqp://mover@rabbit:5672/v"
    monkeypatch.setenv("MOVER_BROKER_PASSWORD", "p@ss/w:rd")
    monkeypatch.setenv("MOVER_JOBS_PASSWORD", "jobs-pw")
    assert config_mod.fleet_setting("broker_url") == "amqp://mover:p%40ss%2Fw%3Ard@rabbit:5672/v"
    assert config_mod.fleet_setting("jobs_url") == "rediss://:jobs-pw@redis:6380/0"
    assert config_mod.fleet_setting("catalogue_url") is None
    # The environment wins over the file.
    monkeypatch.setenv("MOVER_BROKER_URL", "redis://other:6379/1")
    assert config_mod.fleet_setting("broker_url") == "redis://:p%40ss%2Fw%3Ard@other:6379/1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[fleet]\nbroker_url = "redis://:hunter22@h:6379/0"\n', "MOVER_BROKER_PASSWORD"),
        ('[fleet]\nbrokr_url = "redis://h"\n', "not a setting"),
        ("[fleet]\nbroker_url = 5\n", "URL string"),
    ],
)
def test_bad_fleet_table_refused_in_one_line(text: str, message: str) -> None:
    _write_config(text)
    with pytest.raises(ConfigError, match=message) as err:
        config_mod.load()
    assert "hunter22" not in str(err.value) and "\n" not in str(err.value)


def test_redact_masks_passwords_in_urls() -> None:
    text = "cannot reach rediss://user:s3cret@h:6380/0 or amqp://guest:guest@h:5672//"
    assert "s3cret" not in redact(text) and ":guest@" not in redact(text)
    assert "rediss://user:REDACTED@h:6380/0" in redact(text)


def test_catalogue_target_is_a_file_or_a_postgresql_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(backends.open_backend("/tmp/x.sqlite3"), backends.SqliteBackend)
    pg = backends.open_backend("postgresql://mover:pw123@db:5432/cat")
    assert isinstance(pg, backends.PostgresBackend) and "pw123" not in pg.where
    with pytest.raises(ConfigError, match="postgresql:// URL or the path"):
        backends.open_backend("mysql://db/cat")
    monkeypatch.setenv("MOVER_CATALOGUE_URL", "postgresql://db/cat")
    assert Catalogue().where == "postgresql://db/cat" and Catalogue().path is None


def test_a_catalogue_file_made_before_migrations_is_upgraded(tmp_path: Path) -> None:
    """A file of the first schema (no ``schema_version`` table) keeps its rows and is
    recorded at the newest version."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE zones (name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '',"
            " created REAL NOT NULL)"
        )
        old.execute("INSERT INTO zones VALUES ('a', 'old zone', 1.0)")
    cat = Catalogue(path)
    assert [z.name for z in cat.zones()] == ["a"]
    with sqlite3.connect(path) as db:
        (version,) = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    assert version == backends.MIGRATIONS[-1][0]


def test_rabbitmq_broker_needs_a_jobs_url_and_no_amqp_result_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A configuration that cannot work is refused in one line naming the setting to fix,
    never with the broker's password."""
    monkeypatch.setenv("MOVER_BROKER_URL", "amqp://mover:rabbit-pw@rabbit:5672/v")
    monkeypatch.delenv("MOVER_JOBS_URL", raising=False)
    monkeypatch.delenv("MOVER_RESULT_BACKEND", raising=False)
    with pytest.raises(ConfigError, match="MOVER_JOBS_URL=redis://") as err:
        config_mod.jobs_url()
    assert "rabbit-pw" not in str(err.value)
    monkeypatch.setenv("MOVER_JOBS_URL", "redis://redis:6379/2")
    assert config_mod.result_backend() == "redis://redis:6379/2"
    monkeypatch.setenv("MOVER_RESULT_BACKEND", "amqp://mover:rabbit-pw@rabbit:5672/v")
    with pytest.raises(ConfigError, match="no amqp result backend") as err:
        config_mod.result_backend()
    assert "rabbit-pw" not in str(err.value)
    monkeypatch.setenv("MOVER_JOBS_URL", "amqp://rabbit/v")
    with pytest.raises(ConfigError, match="need Redis"):
        config_mod.jobs_url()
    monkeypatch.setenv("MOVER_BROKER_URL", "sqs://queue")
    with pytest.raises(ConfigError, match="amqp://"):
        config_mod.broker_url()


def test_cli_names_the_missing_jobs_url_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from mover.cli.main import cli

    monkeypatch.setenv("MOVER_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    monkeypatch.delenv("MOVER_JOBS_URL", raising=False)
    out = CliRunner().invoke(cli, ["jobs"])
    assert out.exit_code != 0
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "MOVER_JOBS_URL" in lines[0] and ":guest@" not in lines[0]


def test_workers_consume_the_queues_of_catalogue_stores_by_default() -> None:
    """A store added with ``mover stores add`` routes its chunks to ``mover.store.NAME``:
    a worker started without -Q must consume it."""
    from mover import catalogue as cat
    from mover.cli.main import default_queues

    cat.add_store("shelf", "memory://shelf/")
    assert "mover.store.shelf" in default_queues()
