"""TrackSOP settings: one module, every value from the environment.

Production differs only by environment values (see .env.example). With
DJANGO_DEBUG unset the settings refuse to start without a secret key and allowed
hosts, and every `check --deploy` item is on by default.

One module past 500 lines on purpose: each setting sits beside the comment
that says what it does and its default, in the order of .env.example, so an
operator reads one file; the length is declarations, not logic.
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import django_stubs_ext
import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from shipments.carriers.cadence import cadence_settings
from shipments.tracking_numbers import S10_COUNTRY_CODES

# Django's generic classes (ModelAdmin[M], ModelForm[M], QuerySet[M]) as the
# type stubs write them, at run time too.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
# DJANGO_ENV_FILE names another file, or "" for none (the deploy tests, which
# must not pick up the debug .env that `make run` leaves in a checkout).
_ENV_FILE = os.environ.get("DJANGO_ENV_FILE", str(BASE_DIR / ".env"))
if _ENV_FILE:
    environ.Env.read_env(_ENV_FILE, overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)

if DEBUG:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-dev-key-" + "x" * 40)
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
else:
    # env() without a default raises ImproperlyConfigured naming the variable.
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
    if len(SECRET_KEY) < 50 or not ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be at least 50 characters and "
            "DJANGO_ALLOWED_HOSTS must name at least one host."
        )
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_filters",
    "phonenumber_field",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "tracksop",
    "shipments",
    "notifications",
    "exceptions_mgmt",
    "reports",
]

MIDDLEWARE = [
    # Outermost, so static files get the Permissions-Policy too.
    "tracksop.middleware.SecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tracksop.middleware.RejectNulMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After messages: it tells the person why they were signed out.
    "tracksop.middleware.SessionLifetimeMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tracksop.middleware.UserTimezoneMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "tracksop.urls"
WSGI_APPLICATION = "tracksop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tracksop.context_processors.roles",
                "django.template.context_processors.csp",
            ],
            # `date` and `time` that survive a stored time at the calendar's edge.
            "builtins": ["tracksop.templatetags.safe_dates"],
        },
    },
]

DATABASES = {
    "default": env.db(
        "DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"
    )
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A fresh checkout has no var/ yet: any manage.py command may come first.
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the web server read while the worker writes.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # A cache that hangs must not hang the public pages with it.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
] + [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    }
]
# django-axes first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The language a new shipment's messages are written in, until staff choose.
TRACKSOP_DEFAULT_LANGUAGE = env.str("TRACKSOP_DEFAULT_LANGUAGE", default=LANGUAGE_CODE)
if TRACKSOP_DEFAULT_LANGUAGE not in dict(LANGUAGES):
    raise ImproperlyConfigured(
        f"TRACKSOP_DEFAULT_LANGUAGE must be one of {', '.join(dict(LANGUAGES))}."
    )
USE_I18N = True
USE_TZ = True
# Times are stored in UTC; this is the zone shown to users who have not chosen one.
TIME_ZONE = env.str("TRACKSOP_TIME_ZONE", default="UTC")

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "var" / "staticfiles")
# Report files (PDF, CSV, XLSX) and retention archives: a local folder, or any
# S3-compatible bucket with TRACKSOP_FILES_STORAGE=s3 (install the s3 extra;
# django-storages reads AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL,
# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment).
TRACKSOP_FILES_STORAGE = env.str("TRACKSOP_FILES_STORAGE", default="local")
if TRACKSOP_FILES_STORAGE not in ("local", "s3"):
    raise ImproperlyConfigured("TRACKSOP_FILES_STORAGE must be local or s3.")
_reports_storage: dict[str, object] = (
    {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME", default=""),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
    if TRACKSOP_FILES_STORAGE == "s3"
    else {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": env.str("TRACKSOP_FILES_DIR", default=str(VAR_DIR / "files")),
            # Served only through permission-checked views, never by URL.
            "base_url": None,
        },
    }
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "reports": _reports_storage,
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# Email: console on the embedded default; smtp+tls://user:pass@host:587 in
# production; filemail:// writes each message to var/mail/.
_email = env.email_url("EMAIL_URL", default="consolemail://")
_email_options = {
    option: _email[key]
    for key, option in [
        ("EMAIL_HOST", "host"),
        ("EMAIL_PORT", "port"),
        ("EMAIL_HOST_USER", "username"),
        ("EMAIL_HOST_PASSWORD", "password"),
        ("EMAIL_USE_TLS", "use_tls"),
        ("EMAIL_USE_SSL", "use_ssl"),
    ]
    if _email.get(key) not in (None, "")
}
if _email["EMAIL_BACKEND"].endswith("filebased.EmailBackend"):
    _email_options = {"file_path": str(VAR_DIR / "mail")}
elif not _email["EMAIL_BACKEND"].endswith("smtp.EmailBackend"):
    _email_options = {}
else:
    _email_options["timeout"] = env.int("EMAIL_TIMEOUT", default=20)
# EMAIL_BACKEND names any other backend (django-anymail's, say) by dotted path;
# its own settings (ANYMAIL = ...) then come from that package's documentation.
if env.str("EMAIL_BACKEND", default=""):
    _email["EMAIL_BACKEND"], _email_options = env.str("EMAIL_BACKEND"), {}
MAILERS = {"default": {"BACKEND": _email["EMAIL_BACKEND"], "OPTIONS": _email_options}}
DEFAULT_FROM_EMAIL = env.str(
    "DEFAULT_FROM_EMAIL", default="TrackSOP <tracking@localhost>"
)
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Celery: Redis when REDIS_URL is set; otherwise a broker in local files so that
# `make run` needs no server. Results are not used: the database records outcomes.
# With Redis, the broker takes database 1 of the same server, apart from the
# cache, so that clearing the cache never drops queued tasks.
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL",
    default=(
        urlunsplit(urlsplit(REDIS_URL)._replace(path="/1"))
        if REDIS_URL
        else "filesystem://"
    ),
)
# Longer than any task and any retry countdown (TRACKSOP_NOTIFY_RETRY_MAX_SECONDS),
# so Redis never hands a running or waiting task to a second worker.
# The socket timeouts stop a publish from hanging on a Redis that accepts the
# connection but does not answer; the row then waits for the sweeper.
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
    "visibility_timeout": 7200,
    "socket_timeout": 3,
    "socket_connect_timeout": 2,
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(VAR_DIR / "broker-control"),
    }
CELERY_TASK_IGNORE_RESULT = True
# At-least-once: a task is acknowledged after it ran, and requeued when its
# worker dies; the outbox's conditional claim makes the repeat harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_PREFETCH_MULTIPLIER", default=4)
# Sending is waiting on mail and SMS servers: threads wait concurrently.
CELERY_WORKER_POOL = env.str("CELERY_WORKER_POOL", default="threads")
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=16)
# Unset, Celery's Django fixup closes the database connection before and after
# every task: a new PostgreSQL session per message. Each worker thread keeps its
# connection instead; tracksop.celery drops one that failed or outlived
# CONN_MAX_AGE at each task, as Django does at each request.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
# A web request must not hang on a broker that is down: the row stays pending
# and the sweeper queues it when the broker is back.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# A worker waits for Redis as long as it takes, at start and after a drop
# (Celery's default gives up after 100 attempts, about an hour).
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A send in progress when the connection drops finishes and is recorded in the
# database; its task, unacknowledged, comes back and finds the row sent. (A
# thread pool cannot cancel a running task anyway.)
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 0.5,
}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# The one place where periodic work is scheduled; apps add their sweepers here.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "exceptions-sweep": {
        "task": "exceptions_mgmt.tasks.exceptions_sweep",
        "schedule": env.float("TRACKSOP_EXCEPTION_SWEEP_SECONDS", default=180.0),
    },
    "notifications-sweep": {
        "task": "notifications.tasks.notifications_sweep",
        "schedule": env.float("TRACKSOP_NOTIFY_SWEEP_SECONDS", default=30.0),
    },
    "webhooks-sweep": {
        "task": "notifications.tasks.webhooks_sweep",
        "schedule": env.float("TRACKSOP_WEBHOOK_SWEEP_SECONDS", default=30.0),
    },
    # Every night at 02:30 UTC: the delivery log older than its keeping time.
    "webhook-log-purge": {
        "task": "notifications.tasks.webhook_log_purge",
        "schedule": crontab(hour=2, minute=30),
    },
    # Each schedule's run is due Monday or the 1st at 06:00 company time; the
    # beat checks every 15 minutes and the constraint keeps one run per period.
    "reports-schedules": {
        "task": "reports.tasks.report_schedules_task",
        "schedule": 900.0,
    },
    # Stored API responses for Idempotency-Key replays live 24 hours.
    "idempotency-purge": {
        "task": "tracksop.tasks.idempotency_records_purge",
        "schedule": 3600.0,
    },
    # Carrier pushes whose processing task was lost (broker or worker down).
    "carrier-webhooks-sweep": {
        "task": "shipments.tasks.carrier_webhooks_sweep_task",
        "schedule": 60.0,
    },
    # Carrier tracking sync: queue the shipments due, within each carrier
    # account's rate limit (the cadence is TRACKSOP_CARRIER_SYNC).
    "carrier-sync-due": {
        "task": "shipments.tasks.carrier_sync_due_task",
        "schedule": env.float("TRACKSOP_CARRIER_SYNC_SECONDS", default=60.0),
    },
    # The 2nd of each month at 03:00 UTC: archive, verify, then purge.
    "retention-purge": {
        "task": "reports.tasks.retention_purge_task",
        "schedule": crontab(day_of_month="2", hour="3", minute="0"),
    },
}

# The integration API (`/api/v1/`, tracksop/api.py): API keys only, JSON only.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tracksop.api_auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tracksop.api_auth.ScopePermission"],
    "DEFAULT_THROTTLE_CLASSES": ["tracksop.api_auth.KeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tracksop.api.problem_handler",
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "TrackSOP integration API",
    "DESCRIPTION": (
        "Create shipments, post checkpoints and read tracking with an API key "
        "(`Authorization: Bearer tsk_...`). Errors are application/problem+json "
        "(RFC 9457). Every POST takes an `Idempotency-Key` header."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # The reference page's scripts are served from here, not a CDN (and CSP).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several fields are called "status"; each choice set gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "ShipmentStatusEnum": "shipments.status.ShipmentStatus",
        "WebhookStatusEnum": "notifications.models.WebhookStatus",
        "IngestResultStatusEnum": ["created", "duplicate", "refused"],
        "PushAnswerStatusEnum": ["accepted", "duplicate"],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tracksop.api.problem_responses",
    ],
}
# Requests per API key in a sliding window ("N/s", "N/min", "N/hour").
TRACKSOP_API_RATE = env.str("TRACKSOP_API_RATE", default="1200/min")
# Largest accepted request body (bytes): a batch of 1,000 checkpoints fits.
TRACKSOP_API_MAX_BODY = env.int("TRACKSOP_API_MAX_BODY", default=2 * 1024 * 1024)
# Inbound carrier pushes (/api/v1/carriers/<code>/webhook/): the shared secret
# per carrier code, "ups=...,acme=..." (no commas in a secret). A carrier
# without one has every push refused.
TRACKSOP_CARRIER_WEBHOOK_SECRETS: dict[str, str] = env.dict(
    "TRACKSOP_CARRIER_WEBHOOK_SECRETS", default={}
)
# How old (seconds) a signed timestamp may be before the push is refused.
TRACKSOP_CARRIER_WEBHOOK_TOLERANCE = env.int(
    "TRACKSOP_CARRIER_WEBHOOK_TOLERANCE", default=300
)
# Carrier tracking sync (karrio): a provider's API base URL instead of the
# carrier's own, as JSON ({"ups": "http://127.0.0.1:8765/ups"}) or
# "ups=http://…,fedex=http://…": the local fake carrier (manage.py
# fake_carrier) for the demo and the benchmark. Empty: the carriers' servers.
_carrier_api_urls = env.str("TRACKSOP_CARRIER_API_URLS", default="").strip()
TRACKSOP_CARRIER_API_URLS: dict[str, str] = (
    json.loads(_carrier_api_urls)
    if _carrier_api_urls.startswith("{")
    else env.dict("TRACKSOP_CARRIER_API_URLS", default={})
)
# Seconds a carrier's API may take to answer one request.
TRACKSOP_CARRIER_TIMEOUT = env.float("TRACKSOP_CARRIER_TIMEOUT", default=10.0)

# Carrier tracking sync (shipments.carriers.cadence.DEFAULTS lists each name,
# its unit and default): "interval_minutes=60,out_for_delivery_minutes=15".
try:
    TRACKSOP_CARRIER_SYNC: dict[str, float] = cadence_settings(
        env.dict("TRACKSOP_CARRIER_SYNC", default={})
    )
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from exc

# Reports and retention.
# Shipments closed longer than this (months) are archived, then purged.
TRACKSOP_RETENTION_MONTHS = env.int("TRACKSOP_RETENTION_MONTHS", default=24)
if TRACKSOP_RETENTION_MONTHS < 12:
    raise ImproperlyConfigured(
        "TRACKSOP_RETENTION_MONTHS must be 12 or more: the procedure keeps "
        f"tracking records at least 12 months, not {TRACKSOP_RETENTION_MONTHS}."
    )
# Public holidays of this country (ISO code, `holidays` package) are not
# business days; the admin's Holiday list adds the company's own days off.
TRACKSOP_HOLIDAY_COUNTRY = env.str("TRACKSOP_HOLIDAY_COUNTRY", default="US").upper()
TRACKSOP_HOLIDAY_SUBDIVISION = env.str("TRACKSOP_HOLIDAY_SUBDIVISION", default="")


def _check_holiday_country(country: str, subdivision: str) -> None:
    import holidays

    supported = holidays.list_supported_countries()
    if country not in supported:
        raise ImproperlyConfigured(
            f"TRACKSOP_HOLIDAY_COUNTRY={country!r} is not a country the holidays "
            "package knows; use an ISO 3166 code such as US, GB or DE."
        )
    if subdivision and subdivision not in supported[country]:
        raise ImproperlyConfigured(
            f"TRACKSOP_HOLIDAY_SUBDIVISION={subdivision!r} is not a subdivision of "
            f"{country} the holidays package knows."
        )


_check_holiday_country(TRACKSOP_HOLIDAY_COUNTRY, TRACKSOP_HOLIDAY_SUBDIVISION)
# A rate over fewer shipments than this shows "too few" instead of a figure.
TRACKSOP_REPORT_MIN_CELL = env.int("TRACKSOP_REPORT_MIN_CELL", default=10)
# The longest custom report period, in days (13 months).
TRACKSOP_REPORT_MAX_DAYS = env.int("TRACKSOP_REPORT_MAX_DAYS", default=397)

PHONENUMBER_DEFAULT_REGION = env.str("TRACKSOP_PHONE_REGION", default="US")
PHONENUMBER_DB_FORMAT = "E164"

# Tracking numbers generated for the company's own fleet (UPU S10 format).
TRACKSOP_S10_PREFIX = env.str("TRACKSOP_S10_PREFIX", default="TS").upper()
TRACKSOP_S10_COUNTRY = env.str("TRACKSOP_S10_COUNTRY", default="US").upper()
if not (
    len(TRACKSOP_S10_PREFIX) == 2
    and len(TRACKSOP_S10_COUNTRY) == 2
    and (TRACKSOP_S10_PREFIX + TRACKSOP_S10_COUNTRY).isalpha()
    and (TRACKSOP_S10_PREFIX + TRACKSOP_S10_COUNTRY).isascii()
):
    raise ImproperlyConfigured(
        "TRACKSOP_S10_PREFIX and TRACKSOP_S10_COUNTRY must be two letters each."
    )
if TRACKSOP_S10_COUNTRY not in S10_COUNTRY_CODES:
    raise ImproperlyConfigured(
        f"TRACKSOP_S10_COUNTRY must be an ISO 3166-1 country code, like US or "
        f"GB, not {TRACKSOP_S10_COUNTRY!r}."
    )
# How far in the future a checkpoint time may lie (clock skew of hand scanners).
TRACKSOP_FUTURE_TOLERANCE_MINUTES = env.int(
    "TRACKSOP_FUTURE_TOLERANCE_MINUTES", default=5
)
# How long before a shipment was recorded a carrier's scan may be dated (a
# label printed and picked up before the shipment reached this system).
TRACKSOP_PAST_TOLERANCE_DAYS = env.int("TRACKSOP_PAST_TOLERANCE_DAYS", default=30)
# The latest estimated delivery date accepted, in days from today.
TRACKSOP_MAX_ETA_DAYS = env.int("TRACKSOP_MAX_ETA_DAYS", default=90)
if TRACKSOP_PAST_TOLERANCE_DAYS < 0 or TRACKSOP_MAX_ETA_DAYS < 1:
    raise ImproperlyConfigured(
        "TRACKSOP_PAST_TOLERANCE_DAYS must be 0 or more and "
        "TRACKSOP_MAX_ETA_DAYS 1 or more."
    )
# Base URL used in links sent to customers (tracking page, unsubscribe).
TRACKSOP_PUBLIC_URL = env.str("TRACKSOP_PUBLIC_URL", default="http://127.0.0.1:8000")
TRACKSOP_PAGE_SIZE = env.int("TRACKSOP_PAGE_SIZE", default=50)
# The name customers see in messages and on public pages.
TRACKSOP_COMPANY_NAME = env.str("TRACKSOP_COMPANY_NAME", default="TrackSOP")
# The monitor's "Carrier data stale" filter: a connected carrier's package
# whose last successful carrier sync (or, never synced, its dispatch) is older.
_stale_hours = env.float("TRACKSOP_CARRIER_STALE_AFTER_HOURS", default=6.0)
if _stale_hours <= 0:
    raise ImproperlyConfigured("TRACKSOP_CARRIER_STALE_AFTER_HOURS must be above 0.")
TRACKSOP_CARRIER_STALE_AFTER = timedelta(hours=_stale_hours)
# The key carrier account credentials are encrypted with in the database
# (shipments.carriers.credentials); SECRET_KEY when empty. Changing it makes
# the stored credentials unreadable: the admin then asks for them again.
TRACKSOP_CREDENTIALS_KEY = env.str("TRACKSOP_CREDENTIALS_KEY", default="")

# Exceptions: the sweep raises a delay exception for a package past its ETA and
# for one in transit with no scan for TRACKSOP_STALL_HOURS.
TRACKSOP_STALL_HOURS = env.int("TRACKSOP_STALL_HOURS", default=48)
TRACKSOP_DETECTED_SEVERITY = env.str("TRACKSOP_DETECTED_SEVERITY", default="medium")
if TRACKSOP_DETECTED_SEVERITY not in ("low", "medium", "high", "critical"):
    raise ImproperlyConfigured(
        "TRACKSOP_DETECTED_SEVERITY must be low, medium, high or critical."
    )
# When a detected delay should be sorted out (the customer is told this time).
TRACKSOP_DETECTED_RESOLUTION_HOURS = env.int(
    "TRACKSOP_DETECTED_RESOLUTION_HOURS", default=24
)

# Notifications. Which milestones tell the customer (see notifications.models.Kind).
TRACKSOP_NOTIFY_KINDS = env.list(
    "TRACKSOP_NOTIFY_KINDS",
    default=[
        "dispatched",
        "out_for_delivery",
        "available_for_pickup",
        "delivered",
        "exception",
        "exception_resolved",
        "delay",
        "escalation",
    ],
)
# Attempts before a message is marked failed; backoff doubles from BASE up to MAX.
TRACKSOP_NOTIFY_MAX_ATTEMPTS = env.int("TRACKSOP_NOTIFY_MAX_ATTEMPTS", default=8)
TRACKSOP_NOTIFY_RETRY_BASE_SECONDS = env.float(
    "TRACKSOP_NOTIFY_RETRY_BASE_SECONDS", default=30.0
)
TRACKSOP_NOTIFY_RETRY_MAX_SECONDS = env.float(
    "TRACKSOP_NOTIFY_RETRY_MAX_SECONDS", default=3600.0
)
# A claimed message not finished by then is treated as lost with its worker.
# Longer than EMAIL_TIMEOUT and the SMS timeout together.
TRACKSOP_NOTIFY_LEASE_SECONDS = env.float(
    "TRACKSOP_NOTIFY_LEASE_SECONDS", default=300.0
)
# How the worker claims and sends (notifications/sending.py): "fast" (raw
# claim SQL, stored bytes over the open SMTP connection) or "orm" (the plain
# reference path, same outcome, slower).
TRACKSOP_NOTIFY_PATH = env.str("TRACKSOP_NOTIFY_PATH", default="fast")
# Due emails one task sends over its mail connection: its own and, under a
# backlog, others whose tasks then have nothing to do (1: one each).
TRACKSOP_NOTIFY_BATCH_SIZE = env.int("TRACKSOP_NOTIFY_BATCH_SIZE", default=10)
# A request that writes more emails than this leaves building their bytes to
# the workers (an API batch); fewer are built by the request, off the workers.
TRACKSOP_NOTIFY_PREBUILD_MAX = env.int("TRACKSOP_NOTIFY_PREBUILD_MAX", default=50)
if TRACKSOP_NOTIFY_BATCH_SIZE < 1:
    raise ImproperlyConfigured("TRACKSOP_NOTIFY_BATCH_SIZE must be at least 1.")
# The sweeper queues pending rows that have waited this long (broker was down).
TRACKSOP_NOTIFY_STALE_SECONDS = env.float("TRACKSOP_NOTIFY_STALE_SECONDS", default=60.0)
# SMS: console (prints), file (var/sms/), or twilio (the TWILIO_* values below).
TRACKSOP_SMS_BACKEND = env.str("TRACKSOP_SMS_BACKEND", default="console")
if TRACKSOP_SMS_BACKEND not in ("console", "file", "twilio"):
    raise ImproperlyConfigured("TRACKSOP_SMS_BACKEND must be console, file or twilio.")
TRACKSOP_SMS_FILE_PATH = VAR_DIR / "sms"
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
# A phone number in E.164 form, or a Messaging Service SID (MG...).
TWILIO_FROM = env.str("TWILIO_FROM", default="")
TWILIO_API_URL = env.str("TWILIO_API_URL", default="https://api.twilio.com")
TWILIO_TIMEOUT = env.float("TWILIO_TIMEOUT", default=15.0)
if TRACKSOP_SMS_BACKEND == "twilio" and not (
    TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN and TWILIO_FROM
):
    raise ImproperlyConfigured(
        "The twilio SMS backend needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
        "TWILIO_FROM."
    )

# Outbound webhooks (notifications/webhooks/). Off, the default: no request
# to private, loopback, link-local or other non-public addresses (SSRF).
TRACKSOP_WEBHOOK_ALLOW_PRIVATE = env.bool(
    "TRACKSOP_WEBHOOK_ALLOW_PRIVATE", default=False
)
TRACKSOP_WEBHOOK_CONNECT_TIMEOUT = env.float(
    "TRACKSOP_WEBHOOK_CONNECT_TIMEOUT", default=5.0
)
TRACKSOP_WEBHOOK_READ_TIMEOUT = env.float("TRACKSOP_WEBHOOK_READ_TIMEOUT", default=15.0)
# Seconds to wait after each failed attempt (jittered by 10%); one more
# failure after the last and the message has failed.
TRACKSOP_WEBHOOK_RETRY_SCHEDULE = [
    float(s)
    for s in env.list(
        "TRACKSOP_WEBHOOK_RETRY_SCHEDULE",
        default=[
            "5",
            "300",
            "1800",
            "7200",
            "18000",
            "36000",
            "50400",
            "72000",
            "86400",
        ],
    )
]
# Messages of one endpoint a task sends in turn (a task costs the worker more
# than an attempt). Times both timeouts, below the task time limit.
# How long the delivery log (messages sent or given up, their attempts) is kept.
TRACKSOP_WEBHOOK_LOG_DAYS = env.int("TRACKSOP_WEBHOOK_LOG_DAYS", default=30)
if TRACKSOP_WEBHOOK_LOG_DAYS < 1:
    raise ImproperlyConfigured("TRACKSOP_WEBHOOK_LOG_DAYS is at least 1 day.")
TRACKSOP_WEBHOOK_BATCH_SIZE = env.int("TRACKSOP_WEBHOOK_BATCH_SIZE", default=10)
# An endpoint failing this long without a success is disabled, its owner told.
TRACKSOP_WEBHOOK_DISABLE_AFTER_HOURS = env.float(
    "TRACKSOP_WEBHOOK_DISABLE_AFTER_HOURS", default=120.0
)
# How long the old secret still signs after a rotation.
TRACKSOP_WEBHOOK_ROTATION_OVERLAP_HOURS = env.float(
    "TRACKSOP_WEBHOOK_ROTATION_OVERLAP_HOURS", default=24.0
)
# A claimed message whose worker has not finished by then is sent again.
TRACKSOP_WEBHOOK_LEASE_SECONDS = env.float(
    "TRACKSOP_WEBHOOK_LEASE_SECONDS", default=120.0
)
# The sweeper queues pending messages that have waited this long past due.
TRACKSOP_WEBHOOK_STALE_SECONDS = env.float(
    "TRACKSOP_WEBHOOK_STALE_SECONDS", default=30.0
)
# Retries due sooner than this wait in the broker (a countdown); later ones in
# the database only, for the sweeper. Below the broker's visibility timeout.
TRACKSOP_WEBHOOK_COUNTDOWN_MAX_SECONDS = env.float(
    "TRACKSOP_WEBHOOK_COUNTDOWN_MAX_SECONDS", default=1800.0
)
if TRACKSOP_WEBHOOK_LEASE_SECONDS <= (
    TRACKSOP_WEBHOOK_CONNECT_TIMEOUT + TRACKSOP_WEBHOOK_READ_TIMEOUT
):
    raise ImproperlyConfigured(
        "TRACKSOP_WEBHOOK_LEASE_SECONDS must exceed the connect and read timeouts "
        "together, or a slow receiver would be sent the message twice at once."
    )
if (
    TRACKSOP_WEBHOOK_BATCH_SIZE < 1
    or TRACKSOP_WEBHOOK_BATCH_SIZE
    * (TRACKSOP_WEBHOOK_CONNECT_TIMEOUT + TRACKSOP_WEBHOOK_READ_TIMEOUT)
    >= CELERY_TASK_SOFT_TIME_LIMIT
):
    raise ImproperlyConfigured(
        "TRACKSOP_WEBHOOK_BATCH_SIZE must be at least 1, and a batch of receivers "
        "that all time out must end within the task's time limit "
        f"({CELERY_TASK_SOFT_TIME_LIMIT} s)."
    )
if not TRACKSOP_WEBHOOK_RETRY_SCHEDULE or min(TRACKSOP_WEBHOOK_RETRY_SCHEDULE) < 0:
    raise ImproperlyConfigured(
        "TRACKSOP_WEBHOOK_RETRY_SCHEDULE is a list of seconds, none negative."
    )

# Logins (both /accounts/login/ and /admin/login/), by django-axes: after
# TRACKSOP_LOGIN_FAILURE_LIMIT failures for one username, or from one client
# address, that username or address is refused (429) for the cool-off, even
# with the right password. Counted in the database, which every web process
# shares and which keeps the counts when the cache is cleared.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env.int("TRACKSOP_LOGIN_FAILURE_LIMIT", default=10)
_cool_off_minutes = env.int("TRACKSOP_LOGIN_COOLOFF_MINUTES", default=15)
AXES_COOLOFF_TIME = timedelta(minutes=_cool_off_minutes)
if AXES_FAILURE_LIMIT < 1 or _cool_off_minutes < 1:
    raise ImproperlyConfigured(
        "TRACKSOP_LOGIN_FAILURE_LIMIT and TRACKSOP_LOGIN_COOLOFF_MINUTES must be "
        "at least 1."
    )
# Two separate locks: a username guessed at from many addresses, and an address
# guessing at many usernames.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# The address the rate limits use (TRACKSOP_PROXY_COUNT and X-Forwarded-For).
AXES_CLIENT_IP_CALLABLE = "tracksop.http.client_ip"
# Trying again while locked out does not restart the cool-off: the person who
# mistyped gets back in on time, and a guesser still gets only
# AXES_FAILURE_LIMIT tries per cool-off.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# One page for every lock-out, whatever the username: it tells nothing about
# whether an account exists.
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Only failures are kept; a row for every successful login would grow forever.
AXES_DISABLE_ACCESS_LOG = True

# Sessions end TRACKSOP_SESSION_IDLE_MINUTES after the last request and
# TRACKSOP_SESSION_MAX_HOURS after signing in, however busy
# (tracksop.middleware.SessionLifetimeMiddleware). The middleware refreshes a
# session's expiry at most once a minute instead of writing it on every request
# (SESSION_SAVE_EVERY_REQUEST); the extra minute keeps the idle period whole.
TRACKSOP_SESSION_MAX_HOURS = env.int("TRACKSOP_SESSION_MAX_HOURS", default=12)
TRACKSOP_SESSION_IDLE_MINUTES = env.int("TRACKSOP_SESSION_IDLE_MINUTES", default=60)
if TRACKSOP_SESSION_MAX_HOURS < 1 or TRACKSOP_SESSION_IDLE_MINUTES < 1:
    raise ImproperlyConfigured(
        "TRACKSOP_SESSION_MAX_HOURS and TRACKSOP_SESSION_IDLE_MINUTES must be at "
        "least 1."
    )
TRACKSOP_SESSION_REFRESH_SECONDS = 60
SESSION_COOKIE_AGE = (
    TRACKSOP_SESSION_IDLE_MINUTES * 60 + TRACKSOP_SESSION_REFRESH_SECONDS
)

# Content-Security-Policy on every response (Django's own middleware). No
# inline script or style: page scripts live in static/js/. A template that
# needs an inline <script> gives it nonce="{{ csp_nonce }}" (never on a page
# kept in a cache, whose nonce would be stale).
SECURE_CSP: dict[str, list[str]] = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    # Bootstrap's icons (toggler, select arrows) are data: SVGs in its CSS.
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
# Browser features no page uses, switched off for every page and anything a
# page might embed.
TRACKSOP_PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)

# Security: all on unless running in debug mode.
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int(
    "DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True
)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SILENCED_SYSTEM_CHECKS = env.list("DJANGO_SILENCED_SYSTEM_CHECKS", default=[])

# Public pages. Rate limits ("count/period", counted in the cache, or in each
# process while it is down; tracksop.http): lookups per client address, wrong
# lookups per tracking number (past it, one wrong guess per address on that
# number), and form posts per client address.
TRACKSOP_LOOKUP_RATE_PER_CLIENT = env.str(
    "TRACKSOP_LOOKUP_RATE_PER_CLIENT", default="20/10m"
)
TRACKSOP_LOOKUP_RATE_PER_NUMBER = env.str(
    "TRACKSOP_LOOKUP_RATE_PER_NUMBER", default="10/h"
)
TRACKSOP_PUBLIC_POST_RATE = env.str("TRACKSOP_PUBLIC_POST_RATE", default="20/h")
# Proxies in front of the app that append to X-Forwarded-For (0: none, the
# client is REMOTE_ADDR). Only trust as many as you run: the header is forgeable.
TRACKSOP_PROXY_COUNT = env.int("TRACKSOP_PROXY_COUNT", default=0)
for _rate in (
    TRACKSOP_LOOKUP_RATE_PER_CLIENT,
    TRACKSOP_LOOKUP_RATE_PER_NUMBER,
    TRACKSOP_PUBLIC_POST_RATE,
):
    if not re.fullmatch(r"\d+/\d*[smhd]", _rate):
        raise ImproperlyConfigured(
            f"A rate limit is count/period like 20/10m or 10/h, not {_rate!r}."
        )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
