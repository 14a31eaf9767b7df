from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from tracksop.middleware import SESSION_KEY
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
