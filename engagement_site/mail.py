"""EMAIL_URL -> Django email settings.

smtp://user:password@host:587?timeout=10   STARTTLS when the URL is smtp+tls://
smtps://user:password@host:465             implicit TLS
console://  locmem://  dummy://            development and tests
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

_BACKENDS = {
    "console": "django.core.mail.backends.console.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
}


def email_settings_from_url(url: str | None) -> dict[str, object]:
    if url is None:
        return {}
    parsed = urlparse(url)
    if parsed.scheme in _BACKENDS:
        return {"EMAIL_BACKEND": _BACKENDS[parsed.scheme]}
    if not parsed.hostname:
        raise ImproperlyConfigured(f"EMAIL_URL has no host: {url!r}")
    query = parse_qs(parsed.query)
    try:
        timeout = int(query.get("timeout", ["10"])[0])
        port = parsed.port
    except ValueError:
        raise ImproperlyConfigured(f"EMAIL_URL has a bad port or timeout: {url!r}") from None
    implicit_tls = parsed.scheme == "smtps"
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parsed.hostname,
        "EMAIL_PORT": port or (465 if implicit_tls else 587 if parsed.scheme == "smtp+tls" else 25),
        "EMAIL_HOST_USER": unquote(parsed.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parsed.password or ""),
        "EMAIL_USE_SSL": implicit_tls,
        "EMAIL_USE_TLS": parsed.scheme == "smtp+tls",
        "EMAIL_TIMEOUT": timeout,
    }
