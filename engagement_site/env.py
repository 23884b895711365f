"""Strict environment parsing for settings.

Every helper raises ImproperlyConfigured naming the variable and the bad value, so a
typo in a deployment fails at start-up instead of silently falling back to a default.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

TRUE_VALUES = {"1", "true", "yes", "on"}
FALSE_VALUES = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def env_str(name: str, default: str | None = None, *, choices: tuple[str, ...] = ()) -> str | None:
    value = _raw(name)
    if value is None:
        return default
    if choices and value not in choices:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not valid: expected one of {', '.join(choices)}"
        )
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in TRUE_VALUES:
        return True
    if lowered in FALSE_VALUES:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean: use one of {sorted(TRUE_VALUES | FALSE_VALUES)}"
    )


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum {maximum}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, default: str | None, *, schemes: tuple[str, ...]) -> str | None:
    value = _raw(name)
    if value is None:
        return default
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        raise ImproperlyConfigured(
            f"{name} must be a URL with scheme {' or '.join(schemes)}, got {parsed.scheme or 'none'!r}"
        )
    if (
        parsed.scheme not in {"unix", "file", "console", "locmem", "dummy"}
        and not parsed.hostname
        and not parsed.query
    ):
        raise ImproperlyConfigured(f"{name} has no host: {value!r}")
    return value


def env_time_zone(name: str, default: str) -> str:
    import zoneinfo

    value = _raw(name) or default
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(f"{name}={value!r} is not an IANA time zone") from None
    return value


def env_origins(name: str, default: list[str]) -> list[str]:
    origins = env_list(name, default)
    for origin in origins:
        parsed = urlparse(origin)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise ImproperlyConfigured(
                f"{name} entry {origin!r} must be an origin such as https://app.example.com"
            )
    return origins


def required(name: str, value: str | None, reason: str) -> str:
    if value is None:
        raise ImproperlyConfigured(f"{name} must be set {reason}")
    return value
