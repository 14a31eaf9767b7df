from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django import forms
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.sites.shortcuts import get_current_site
from django.db import transaction

from tracksop.tasks import password_reset_mail

log = logging.getLogger(__name__)


class LocalDateTimeField(forms.DateTimeField):
    """A datetime-local box read in the user's zone. A time that the zone
    pushes off the calendar (year 0001 ahead of UTC, 9999 behind it) is an
    invalid entry at the field, not an OverflowError."""

    widget = forms.DateTimeInput(
        attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
    )

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except OverflowError as exc:
            raise forms.ValidationError(self.error_messages["invalid"]) from exc


class QueuedPasswordResetForm(PasswordResetForm):
    """Hands the address to a worker instead of looking it up and mailing it
    in the request: known and unknown addresses then cost the request the
    same, so its timing does not tell which addresses have an account."""

    def save(  # type: ignore[override]
        self,
        domain_override: str | None = None,
        use_https: bool = False,
        request: Any = None,
        **kwargs: Any,
    ) -> None:
        domain = domain_override or get_current_site(request).domain
        transaction.on_commit(
            partial(
                _queue_password_reset_mail,
                self.cleaned_data["email"],
                domain,
                use_https,
            )
        )


def _queue_password_reset_mail(email: str, domain: str, use_https: bool) -> None:
    try:
        password_reset_mail.delay(email, domain, use_https)
    except Exception:
        # The broker is down: the page says the same as ever and the person
        # asks again; an error page here would tell nothing more useful.
        log.warning("Password reset mail not queued: the broker is down", exc_info=True)
