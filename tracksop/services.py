"""Writes and side effects of the project-level (accounts) pages."""

from __future__ import annotations

from django.contrib.auth.forms import PasswordResetForm


def password_reset_mail_send(*, email: str, domain: str, use_https: bool) -> None:
    """Mail a reset link to every active account with this address (Django's
    own form does the look-up, the token and the message); nothing if none."""
    form = PasswordResetForm(data={"email": email})
    if form.is_valid():
        form.save(domain_override=domain, use_https=use_https)
