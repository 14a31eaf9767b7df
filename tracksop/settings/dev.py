"""`manage.py` in a checkout: the base settings in debug mode, so that
`makemigrations`, `check` and friends run on a fresh clone with no secrets.

Deployments never use it: the Dockerfile sets DJANGO_SETTINGS_MODULE to
tracksop.settings.base, which refuses to start without a secret key.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_DEBUG", "true")

from tracksop.settings.base import *  # noqa: F403
