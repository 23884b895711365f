"""Settings, read from the environment. See docs/configuration.md for every variable.

A bad value fails at start-up with a message naming the variable. DJANGO_ENV selects
the profile: `development` (default; embedded PostgreSQL/Redis when their URLs are
unset, a generated SECRET_KEY under ./var), `test`, or `production` (every secret
and URL required, secure cookies, HSTS, `check --deploy` clean).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from engagement_site import embedded
from engagement_site.env import (
    env_bool,
    env_int,
    env_list,
    env_origins,
    env_str,
    env_time_zone,
    env_url,
    required,
)
from engagement_site.mail import email_settings_from_url
from engagement_site.storage import asset_storages_from_env

BASE_DIR = Path(__file__).resolve().parent.parent

DJANGO_ENV = env_str("DJANGO_ENV", "development", choices=("development", "test", "production"))
IS_PRODUCTION = DJANGO_ENV == "production"
VAR_DIR = embedded.var_dir()

DEBUG = env_bool("DEBUG", default=not IS_PRODUCTION)
if IS_PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when DJANGO_ENV=production")


def _secret_key() -> str:
    configured = env_str("SECRET_KEY")
    if configured:
        if IS_PRODUCTION and len(configured) < 50:
            raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters in production")
        return configured
    if IS_PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production")
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
# Fernet keys for secrets at rest (provider credentials); the first encrypts, all
# decrypt. Empty: one derived from SECRET_KEY (engagement_site.crypto).
ENCRYPTION_KEYS = env_list("ENCRYPTION_KEYS", [])

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", [] if IS_PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"]
)
if IS_PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DJANGO_ENV=production")
CSRF_TRUSTED_ORIGINS = env_origins("CSRF_TRUSTED_ORIGINS", [])

# --------------------------------------------------------------------------- services

_database_url = env_url("DATABASE_URL", None, schemes=("postgres", "postgresql"))
_redis_url = env_url("REDIS_URL", None, schemes=("redis", "rediss", "unix"))
if IS_PRODUCTION:
    required("DATABASE_URL", _database_url, "when DJANGO_ENV=production")
    required("REDIS_URL", _redis_url, "when DJANGO_ENV=production")
if _database_url is None:
    _database_url, _ = embedded.ensure_postgres()
if _redis_url is None:
    _redis_url, _ = embedded.ensure_redis()
DATABASE_URL: str = _database_url
REDIS_URL: str = _redis_url

DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
# The web process (engagement_site/asgi.py turns this on) shares a psycopg pool: Daphne
# runs each request in a thread of its own and Django's connections belong to a thread,
# so a persistent connection would be opened per request and then linger until its
# thread is collected (a busy server ran PostgreSQL out of connections). Workers and
# commands run in one thread and keep their persistent connection.
if env_bool("DATABASE_POOL", False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 20, minimum=2),
        # Seconds a request waits for a free connection before its view gets an error
        # (the tracking API answers 503 with Retry-After).
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 10, minimum=1),
    }
# PostgreSQL's JIT compiler (on by default in Debian's and most packaged servers) costs
# more than it saves on the segment rules' correlated subqueries: the quick segments
# benchmark's streak rule took 3.5 s with it and 0.6 s without, the real-time hook 312
# against 131 ms (docs/performance.md). "server" leaves the server's setting (e.g. behind
# a PgBouncer that refuses startup options).
if env_str("DATABASE_JIT", "off", choices=("off", "server")) == "off":
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    # Added to any `options` DATABASE_URL carries (e.g. `-c search_path=...`).
    _options["options"] = " ".join(filter(None, [_options.get("options", ""), "-c jit=off"]))
# Lets two test runs share one PostgreSQL server without sharing a test database.
DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "cache",
    }
}

# Delivery channels (dotted paths; installed packages add more through the
# `engagement.channels` entry point group, docs/plugins.md). Each channel sends from its
# own queue, so a slow provider holds up only its own messages.
DELIVERY_CHANNELS = env_list(
    "DELIVERY_CHANNELS",
    [
        "delivery.channels.email.EmailChannel",
        "delivery.channels.sms.SmsChannel",
        "delivery.channels.whatsapp.WhatsAppChannel",
        "delivery.channels.push.PushChannel",
        "delivery.channels.web_push.WebPushChannel",
        "delivery.channels.in_app.InAppChannel",
        "delivery.channels.webhook.WebhookChannel",
    ],
)
# Web push subscriptions may point only at these push services (the write key that
# registers them is public, so any other host would let anyone aim our server at it).
WEB_PUSH_ENDPOINT_HOSTS = env_list(
    "WEB_PUSH_ENDPOINT_HOSTS",
    ["fcm.googleapis.com", "push.services.mozilla.com", "push.apple.com", "notify.windows.com"],
)


def _networks(name: str, default: list[str]) -> list[str]:
    import ipaddress

    values = env_list(name, default)
    for value in values:
        try:
            ipaddress.ip_network(value)
        except ValueError as error:
            raise ImproperlyConfigured(
                f"{name} entry {value!r} is not a network: {error}"
            ) from None
    return values


# Webhooks and provider base URLs are workspace settings: requests to them may not
# reach loopback, private, link-local (cloud metadata) or other non-public addresses,
# except in these networks (CIDRs; engagement_site/outbound.py). Development lets
# loopback through for local receivers and fake providers (`make bench` posts
# webhooks to one); tests allow it in tests/conftest.py; production allows nothing.
OUTBOUND_ALLOWED_NETWORKS = _networks(
    "OUTBOUND_ALLOWED_NETWORKS",
    ["127.0.0.0/8", "::1/128"] if DJANGO_ENV == "development" else [],
)
DELIVERY_CHANNEL_QUEUES = [
    f"delivery-{channel}"
    for channel in ("email", "sms", "whatsapp", "push", "web_push", "in_app", "webhook")
]
RQ_QUEUES = {
    name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600}
    for name in ("default", "ingest", "journeys", "delivery", "analytics", *DELIVERY_CHANNEL_QUEUES)
}
# Work is claimed from the database; RQ only carries it, so the cheap non-forking
# worker is safe (see docs/architecture.md).
RQ = {"WORKER_CLASS": "rq.worker.SimpleWorker"}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 times socket reads out after 5 s by default, shorter than the
        # channel layer's blocking receive: every idle websocket consumer would crash
        # and reconnect every 5 s (channels_redis issue 422). Reads wait up to 30 s.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}],
            "capacity": 1000,
            "expiry": 30,
        },
    }
}

# --------------------------------------------------------------------------- apps

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "django_rq",
    "channels",
    "axes",
    "engagement_site",
    "engagement_site.workspaces",
    "segments",
    "content",
    "journeys",
    "delivery",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "engagement_site.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "engagement_site.urls"
ASGI_APPLICATION = "engagement_site.asgi.application"
WSGI_APPLICATION = "engagement_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            # Daphne has no autoreloader to clear Django's cached loader, so development
            # reads templates afresh on every render; production caches them.
            "loaders": (
                [
                    "django.template.loaders.filesystem.Loader",
                    "django.template.loaders.app_directories.Loader",
                ]
                if DEBUG
                else [
                    (
                        "django.template.loaders.cached.Loader",
                        [
                            "django.template.loaders.filesystem.Loader",
                            "django.template.loaders.app_directories.Loader",
                        ],
                    )
                ]
            ),
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "engagement_site.workspaces.context_processors.workspace",
            ],
        },
    },
]

# --------------------------------------------------------------------------- auth

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
if DJANGO_ENV == "test":
    # Hashing strength is not under test; a fast hasher keeps the suite quick.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes): lock a username+IP pair after repeated failures.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)

# --------------------------------------------------------------------------- i18n

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_time_zone("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --------------------------------------------------------------------------- files

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
NODE_MODULES = BASE_DIR / "node_modules"
# Front-end packages come from npm (package.json); only their dist folders are exposed.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/x6", NODE_MODULES / "@antv" / "x6" / "dist"),
    ("vendor/chartjs", NODE_MODULES / "chart.js" / "dist"),
    ("vendor/swagger-ui", NODE_MODULES / "swagger-ui-dist"),
]
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# Content library files: originals and thumbnails in a private store (served only to
# members, through the app), and the copies messages use in a public one. "local" keeps
# both under MEDIA_ROOT (the app serves the public one at /media/public/); "s3" puts
# them in two buckets of any S3-compatible store (docs/configuration.md).
ASSET_STORAGE = env_str("ASSET_STORAGE", "local", choices=("local", "s3"))
_asset_storages = asset_storages_from_env(ASSET_STORAGE, media_root=MEDIA_ROOT)
# Upload limits (bytes) per kind, the workspace quota over all its assets, and the
# largest image (in pixels, all frames of an animation together) we agree to decode.
ASSET_MAX_IMAGE_BYTES = env_int("ASSET_MAX_IMAGE_BYTES", 10 * 1024 * 1024, minimum=1024)
ASSET_MAX_VIDEO_BYTES = env_int("ASSET_MAX_VIDEO_BYTES", 100 * 1024 * 1024, minimum=1024)
ASSET_WORKSPACE_QUOTA_BYTES = env_int(
    "ASSET_WORKSPACE_QUOTA_BYTES", 5 * 1024 * 1024 * 1024, minimum=1024
)
ASSET_MAX_PIXELS = env_int("ASSET_MAX_PIXELS", 50_000_000, minimum=10_000)
STORAGES = {
    **_asset_storages,
    "default": {
        "BACKEND": env_str("STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage"),
    },
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if IS_PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        ),
    },
}

# --------------------------------------------------------------------------- email

_email_url = env_url(
    "EMAIL_URL",
    None if IS_PRODUCTION else "console://",
    schemes=("smtp", "smtps", "smtp+tls", "console", "locmem", "dummy"),
)
if IS_PRODUCTION:
    required("EMAIL_URL", _email_url, "when DJANGO_ENV=production")
globals().update(email_settings_from_url(_email_url))
# `make run` (runstack) starts a development SMTP server when EMAIL_URL is unset and
# points its children at it; what it takes is shown on the outbox page.
DEV_SMTP_PORT = env_int("DEV_SMTP_PORT", 1025, minimum=1)
DEV_OUTBOX_DIR = Path(env_str("DEV_OUTBOX_DIR", str(VAR_DIR / "outbox")))
DEV_OUTBOX_ENABLED = not IS_PRODUCTION
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Engagement <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --------------------------------------------------------------------------- API

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "engagement_site.workspaces.authentication.SecretKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "engagement_site.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Engagement API",
    "DESCRIPTION": "REST API of the self-hosted customer engagement platform. "
    "Authenticate with a workspace secret key: `Authorization: Bearer <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": STATIC_URL + "vendor/swagger-ui",
    "SWAGGER_UI_FAVICON_HREF": STATIC_URL + "img/favicon.svg",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "engagement_site.api.document_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "AssetKind": "content.models.Asset.Kind",
        "AssetStatus": "content.models.Asset.Status",
        "TemplateChannel": "content.models.Channel",
        "JourneyStatus": "journeys.models.Journey.Status",
        "EnrollmentState": "journeys.models.Enrollment.State",
    },
}

# --------------------------------------------------------------------------- security

SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 14 * 24 * 3600, minimum=300)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp; engagement_site/csp.py, docs/security.md): scripts
# only from our origin, no inline scripts or handlers, no eval. Styles keep
# 'unsafe-inline': X6 (the journey builder) injects its stylesheet and positions every
# node with style attributes at run time, and Chart.js sizes its canvas the same way.
# Images may come from any https origin: email previews show the template's own images.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:", "https:"],
        "media-src": ["'self'", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if IS_PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --------------------------------------------------------------------------- app

# Public base URL used in links that leave the app (tracking, unsubscribe, invites).
PUBLIC_URL = env_url(
    "PUBLIC_URL", None if IS_PRODUCTION else "http://127.0.0.1:8000", schemes=("http", "https")
)
if IS_PRODUCTION:
    required("PUBLIC_URL", PUBLIC_URL, "when DJANGO_ENV=production")
# Message images (public media) live at PUBLIC_URL, which may be another origin than the
# one the app is browsed at (plain http in development): previews may load them.
_public_origin = "{0.scheme}://{0.netloc}".format(urlsplit(PUBLIC_URL))
CONTENT_SECURITY_POLICY["DIRECTIVES"]["img-src"].append(_public_origin)
CONTENT_SECURITY_POLICY["DIRECTIVES"]["media-src"].append(_public_origin)
# A worker or scheduler whose heartbeat is older than this is reported down by /healthz.
HEARTBEAT_STALE_SECONDS = env_int("HEARTBEAT_STALE_SECONDS", 60, minimum=5)
SCHEDULER_INTERVAL_SECONDS = env_int("SCHEDULER_INTERVAL_SECONDS", 5, minimum=1)
# How long a worker holds what it claimed: a journey worker its enrollments, a send job
# its messages. A killed worker's claims are taken over when they run out, so they must
# outlast any job (RQ's timeout is 600 s for sends); the fault tests run with seconds.
JOURNEY_LEASE_SECONDS = env_int("JOURNEY_LEASE_SECONDS", 300, minimum=1)
DELIVERY_SEND_LEASE_SECONDS = env_int("DELIVERY_SEND_LEASE_SECONDS", 900, minimum=3)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["console"],
        "level": env_str("LOG_LEVEL", "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    },
    "loggers": {
        "pgserver": {"level": "WARNING"},
        "django.db.backends": {"level": "INFO"},
    },
}
SCHEDULER_DUTIES: list[str] = [
    "segments.partitions.scheduler_duty",
    "segments.importers.scheduler_duty",
    "segments.membership.scheduler_duty",
    "journeys.executor.scheduler_duty",
    "delivery.services.scheduler_duty",
    "analytics.value.scheduler_duty",  # daily customer value per workspace
    "analytics.exports.scheduler_duty",
    "analytics.services.scheduler_duty",  # fold past days' counter shards, hourly
]

# Warehouse exports (docs/analytics.md): once a UTC day is over, each workspace's
# messages, message events and events of that day go to files under this directory
# (unset: no scheduled export). Must be an absolute path.
WAREHOUSE_EXPORT_DIR = env_str("WAREHOUSE_EXPORT_DIR")
if WAREHOUSE_EXPORT_DIR and not Path(WAREHOUSE_EXPORT_DIR).is_absolute():
    raise ImproperlyConfigured(
        f"WAREHOUSE_EXPORT_DIR={WAREHOUSE_EXPORT_DIR!r} is not an absolute path"
    )
WAREHOUSE_EXPORT_FORMAT = env_str("WAREHOUSE_EXPORT_FORMAT", "parquet", choices=("csv", "parquet"))

# --------------------------------------------------------------------------- ingestion

# Dotted paths of functions called, after commit, by one RQ job per ingested batch:
# hook(*, workspace_id: int, profile_ids: list[int], event_ids: list[int]) -> None.
# See segments/tasks.py (ingested_batch_process) for the contract.
INGESTION_HOOKS: list[str] = [
    "segments.membership.segments_for_ingested_batch",  # first: journeys read memberships
    "journeys.executor.journeys_for_ingested_batch",
]
# Limits of the Segment-compatible tracking API (/v1/*), as Segment and RudderStack set them.
INGESTION_MAX_EVENT_BYTES = 32 * 1024
INGESTION_MAX_REQUEST_BYTES = 4 * 1024 * 1024
INGESTION_MAX_BATCH_EVENTS = 2500
# IngestionSettings.rate_limit_per_second is averaged over this window (a fixed window
# counted in Redis), so a client flushing a full batch at once fits the default rate.
INGESTION_RATE_WINDOW_SECONDS = 10
# A write key's workspace and ingestion settings are cached in each process this long:
# a revoked key is refused at most this many seconds later.
INGESTION_WRITE_KEY_CACHE_SECONDS = 5
# Each statement of a tracking request's batch may take this long (a lock held elsewhere,
# an overloaded database) before the batch is rolled back and answered 503 Retry-After,
# well inside the clients' own timeouts (Segment's: 15 s). 0: no limit.
INGESTION_STATEMENT_TIMEOUT_MS = env_int("INGESTION_STATEMENT_TIMEOUT_MS", 5000, minimum=0)
