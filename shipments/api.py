"""The shipments app's endpoints under /api/v1/ (see tracksop/api.py)."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
