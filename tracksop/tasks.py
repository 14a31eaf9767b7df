from __future__ import annotations

from celery import shared_task

from tracksop import services


@shared_task(ignore_result=True)
def password_reset_mail(email: str, domain: str, use_https: bool) -> None:
    # Takes the typed address, not a user id: the request must not look it up.
    services.password_reset_mail_send(email=email, domain=domain, use_https=use_https)


@shared_task(ignore_result=True)
def idempotency_records_purge() -> int:
    return services.idempotency_records_purge()
