"""Loaded with `-p tests.bootstrap` (pyproject), before pytest-django reads settings.

Gives the suite a real PostgreSQL and Redis: the ones in DATABASE_URL / REDIS_URL
when set, otherwise the embedded servers under ./var/ (started if needed, and
stopped at the end if this session started them). Tests use Redis database 1, so a
`make run` on the same embedded Redis (database 0) is not disturbed; the suite
flushes the Redis database it uses.
"""

from __future__ import annotations

import os
import shutil
import tempfile

os.environ.setdefault("DJANGO_ENV", "test")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "engagement_site.settings")

from engagement_site import embedded

# Uploaded media of the whole session (in-process tests and the browser tests' Daphne)
# go to a throw-away directory, never into ./var/media of `make run`.
_MEDIA_ROOT = None
if not os.environ.get("MEDIA_ROOT"):
    _MEDIA_ROOT = os.environ["MEDIA_ROOT"] = tempfile.mkdtemp(prefix="engagement-test-media-")

if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"], _ = embedded.ensure_postgres()
if not os.environ.get("REDIS_URL"):
    url, _ = embedded.ensure_redis()
    os.environ["REDIS_URL"] = f"{url}?db=1"


def pytest_unconfigure(config) -> None:
    embedded.stop_started_here()
    if _MEDIA_ROOT:
        shutil.rmtree(_MEDIA_ROOT, ignore_errors=True)
