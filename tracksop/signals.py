from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.utils import timezone

from tracksop.middleware import LOGIN_AT_KEY, SEEN_AT_KEY, SESSION_KEY
from tracksop.models import StaffProfile


@receiver(user_logged_in)
def remember_timezone(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    tz = (
        StaffProfile.objects.filter(user=user)
        .values_list("timezone", flat=True)
        .first()
    )
    if tz:
        request.session[SESSION_KEY] = tz


@receiver(user_logged_in)
def remember_login_time(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """The start of the working day the session may last (SessionLifetimeMiddleware)."""
    now = int(timezone.now().timestamp())
    request.session[LOGIN_AT_KEY] = now
    request.session[SEEN_AT_KEY] = now
