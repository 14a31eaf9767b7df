"""Test settings: the real PostgreSQL and Redis (DATABASE_URL / REDIS_URL)."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/tracksop"
)
# The cache too: one Redis database per xdist worker (gw0 → 15, gw1 → 14),
# because a test's cache.clear() empties the whole database, the other
# worker's rate-limit counters and cached pages included. Chosen the same way
# as the broker below; a REDIS_URL given from outside is kept.
if "REDIS_URL" not in os.environ or os.environ.get("TRACKSOP_TEST_REDIS"):
    os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/" + str(
        15 - int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0) % 2
    )
    os.environ["TRACKSOP_TEST_REDIS"] = "chosen by tracksop/settings/test.py"
# One broker database per xdist worker (gw0 → 1, gw1 → 2, ...), so tests that
# start a Celery worker never take each other's tasks. The variable goes into
# the environment (Celery reads it there first). The pytest controller
# imports these settings too, and its workers inherit its environment, so a
# value this file chose is marked and chosen again in each worker; one given
# from outside is kept.
if "CELERY_BROKER_URL" not in os.environ or os.environ.get("TRACKSOP_TEST_BROKER"):
    os.environ["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/" + str(
        1 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0) % 13
    )
    os.environ["TRACKSOP_TEST_BROKER"] = "chosen by tracksop/settings/test.py"

from tracksop.settings.base import *  # noqa: F403
from tracksop.settings.base import CACHES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests that start a worker subprocess give it an EMAIL_URL (an aiosmtpd server).
if "EMAIL_URL" not in os.environ:
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
STORAGES["staticfiles"]["BACKEND"] = (  # type: ignore[index]  # noqa: F405
    "django.contrib.staticfiles.storage.StaticFilesStorage"
)
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
# Each xdist worker gets its own cache key prefix so workers do not see each other.
CACHES["default"]["KEY_PREFIX"] = "test-" + os.environ.get(
    "PYTEST_XDIST_WORKER", "main"
)
LOGGING["root"]["level"] = "WARNING"  # type: ignore[index]  # noqa: F405
