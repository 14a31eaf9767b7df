"""Production configuration: refuses to start unsafe, passes `check --deploy`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The deploy check and settings in subprocesses: nothing here hangs on the
# date, so the run with the clock moved (make test-future) leaves them out.
pytestmark = pytest.mark.clock_free

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "tracksop.settings.base",
    "DJANGO_SECRET_KEY": "k" * 20
    + "-production-secret-for-the-deploy-check-"
    + "z" * 20,
    "DJANGO_ALLOWED_HOSTS": "track.example.com",
    "DATABASE_URL": "postgres://postgres:postgres@127.0.0.1:5432/postgres",
    "REDIS_URL": "redis://127.0.0.1:6379/14",
    "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
}


def production_manage(
    *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    # Production as configured by these variables alone, not a checkout's .env.
    clean["DJANGO_ENV_FILE"] = ""
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_settings_pass_the_deploy_check() -> None:
    result = production_manage(
        "check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"])
def test_production_refuses_to_start_without(missing: str) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = production_manage("check", env=env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr


def test_production_refuses_a_short_secret_key() -> None:
    result = production_manage("check", env=PRODUCTION | {"DJANGO_SECRET_KEY": "short"})
    assert result.returncode != 0
    assert "at least 50 characters" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TRACKSOP_S10_COUNTRY", "UK", "must be an ISO 3166-1 country code"),
        ("TRACKSOP_LOOKUP_RATE_PER_NUMBER", "10 an hour", "count/period"),
    ],
)
def test_production_refuses_a_bad_setting(
    variable: str, value: str, message: str
) -> None:
    result = production_manage("check", env=PRODUCTION | {variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_the_deploy_check_flags_a_console_mailer() -> None:
    env = PRODUCTION | {"EMAIL_URL": "consolemail://"}
    result = production_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "mail.E001" in result.stderr


def test_docker_compose_file_is_valid() -> None:
    result = subprocess.run(
        ["docker-compose", "config", "-q"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_manage_py_in_a_fresh_checkout_runs_without_secrets() -> None:
    # No .env, no DJANGO_* variables: developers' commands still work.
    env = {"DATABASE_URL": PRODUCTION["DATABASE_URL"], "EMAIL_URL": "consolemail://"}
    result = production_manage("makemigrations", "--check", "--dry-run", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout


def test_the_image_runs_every_command_with_the_production_settings() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "DJANGO_SETTINGS_MODULE=tracksop.settings.base" in dockerfile
