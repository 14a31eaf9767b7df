"""Production settings for the public-page benchmark (bench/public.py).

Everything comes from tracksop.settings.base and the same environment values as
a deployment; only the URLconf differs, to put the baseline views of
bench/urls.py beside the application's pages.
"""

from __future__ import annotations

from tracksop.settings.base import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
