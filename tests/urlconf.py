"""The project's URL patterns, walked from the root URLconf: the tests that must cover
every URL (tenancy, the isolation matrix, CSRF, the CSP walk) build on this, so a view
added later is covered without touching them."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, get_resolver


def url_patterns(patterns=None, prefix: str = "") -> list[tuple[str, URLPattern]]:
    """(full route, pattern) for every URL pattern, included URLconfs expanded."""
    found = []
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            found += url_patterns(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            found.append((prefix + str(entry.pattern), entry))
    return found
