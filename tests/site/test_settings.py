"""Settings fail loudly on bad values, and production mode passes `check --deploy`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from engagement_site import env
from engagement_site.mail import email_settings_from_url

ROOT = Path(__file__).resolve().parents[2]


def _load_settings(
    extra: dict[str, str], drop: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    environment = {**os.environ, **extra}
    for name in drop:
        environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('loaded')"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
        (
            "DJANGO_ENV",
            "staging",
            "DJANGO_ENV='staging' is not valid: expected one of development, test, production",
        ),
        (
            "DATABASE_URL",
            "mysql://db.example.com/app",
            "DATABASE_URL must be a URL with scheme postgres or postgresql, got 'mysql'",
        ),
        (
            "REDIS_URL",
            "memcached://cache:11211",
            "REDIS_URL must be a URL with scheme redis or rediss or unix, got 'memcached'",
        ),
        ("DATABASE_CONN_MAX_AGE", "sixty", "DATABASE_CONN_MAX_AGE='sixty' is not an integer"),
        ("DATABASE_CONN_MAX_AGE", "-1", "DATABASE_CONN_MAX_AGE=-1 is below the minimum 0"),
        (
            "TIME_ZONE",
            "Mars/Olympus_Mons",
            "TIME_ZONE='Mars/Olympus_Mons' is not an IANA time zone",
        ),
        (
            "CSRF_TRUSTED_ORIGINS",
            "app.example.com",
            "CSRF_TRUSTED_ORIGINS entry 'app.example.com' must be an origin",
        ),
        (
            "EMAIL_URL",
            "pigeon://loft",
            "EMAIL_URL must be a URL with scheme smtp or smtps or smtp+tls or console or locmem or dummy, got 'pigeon'",
        ),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD' is not valid"),
        (
            "DATABASE_JIT",
            "on",
            "DATABASE_JIT='on' is not valid: expected one of off, server",
        ),
    ],
)
def test_a_bad_value_stops_start_up_with_a_message_naming_it(variable, value, message):
    result = _load_settings({variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr
    assert "loaded" not in result.stdout


PRODUCTION = {
    "DJANGO_ENV": "production",
    "DEBUG": "false",
    "SECRET_KEY": "x9-" + "k3Jd8s0Qm2Lp7Vb4Nc6Xz1Rt5Wy8Ue0Io3Pa6Sd9Fg2Hj5Kl8Zx1Cv4Bn7Mq0We3Rt",
    "ALLOWED_HOSTS": "engage.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://engage.example.com",
    "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
    "PUBLIC_URL": "https://engage.example.com",
}


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("SECRET_KEY", "SECRET_KEY must be set when DJANGO_ENV=production"),
        ("ALLOWED_HOSTS", "ALLOWED_HOSTS must be set when DJANGO_ENV=production"),
        ("DATABASE_URL", "DATABASE_URL must be set when DJANGO_ENV=production"),
        ("REDIS_URL", "REDIS_URL must be set when DJANGO_ENV=production"),
        ("EMAIL_URL", "EMAIL_URL must be set when DJANGO_ENV=production"),
    ],
)
def test_production_requires_every_secret_and_url(missing, message):
    result = _load_settings(PRODUCTION, drop=(missing,))
    assert result.returncode != 0
    assert message in result.stderr


def test_production_refuses_debug_and_short_keys():
    debug = _load_settings({**PRODUCTION, "DEBUG": "true"})
    short = _load_settings({**PRODUCTION, "SECRET_KEY": "short"})
    assert "DEBUG must be off when DJANGO_ENV=production" in debug.stderr
    assert "SECRET_KEY must be at least 50 characters in production" in short.stderr


def test_check_deploy_is_clean_in_production_mode():
    environment = {**os.environ, **PRODUCTION}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_development_generates_and_keeps_a_secret_key(tmp_path):
    first = _load_settings(
        {"ENGAGEMENT_VAR_DIR": str(tmp_path), "DJANGO_ENV": "development"}, drop=("SECRET_KEY",)
    )
    key = (tmp_path / "secret_key").read_text()
    second = _load_settings(
        {"ENGAGEMENT_VAR_DIR": str(tmp_path), "DJANGO_ENV": "development"}, drop=("SECRET_KEY",)
    )
    assert (first.returncode, second.returncode) == (0, 0)
    assert len(key) >= 80
    assert (tmp_path / "secret_key").read_text() == key
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_strict_helpers(monkeypatch):
    monkeypatch.setenv("FLAG", "Yes")
    monkeypatch.setenv("COUNT", "12")
    monkeypatch.setenv("HOSTS", " a.example.com, b.example.com ,")
    assert env.env_bool("FLAG", False) is True
    assert env.env_int("COUNT", 1, maximum=20) == 12
    assert env.env_list("HOSTS", []) == ["a.example.com", "b.example.com"]
    monkeypatch.setenv("COUNT", "21")
    with pytest.raises(ImproperlyConfigured, match="COUNT=21 is above the maximum 20"):
        env.env_int("COUNT", 1, maximum=20)


def test_email_url_parsing():
    assert email_settings_from_url("smtps://user%40x:p%3Ass@mail.example.com") == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "mail.example.com",
        "EMAIL_PORT": 465,
        "EMAIL_HOST_USER": "user@x",
        "EMAIL_HOST_PASSWORD": "p:ss",
        "EMAIL_USE_SSL": True,
        "EMAIL_USE_TLS": False,
        "EMAIL_TIMEOUT": 10,
    }
    assert email_settings_from_url("console://") == {
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"
    }


def test_the_suite_runs_on_real_postgresql_and_redis():
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert settings.REDIS_URL.startswith(("redis://", "rediss://", "unix://"))


@pytest.mark.django_db
def test_the_apps_connections_run_without_postgresqls_jit():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone() == ("off",)


def test_database_jit_server_keeps_the_servers_setting():
    result = subprocess.run(
        [sys.executable, "-c",
         "import django; django.setup(); from django.conf import settings; "
         "print(settings.DATABASES['default'].get('OPTIONS', {}).get('options'))"],
        cwd=ROOT, env={**os.environ, "DATABASE_JIT": "server"}, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"


def test_jit_off_is_added_to_the_options_database_url_carries():
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/app")
    separator = "&" if "?" in url else "?"
    result = subprocess.run(
        [sys.executable, "-c",
         "import django; django.setup(); from django.conf import settings; "
         "print(settings.DATABASES['default']['OPTIONS']['options'])"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": f"{url}{separator}options=-c%20search_path%3Dpublic"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "-c search_path=public -c jit=off"
