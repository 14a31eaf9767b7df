from __future__ import annotations

from celery import shared_task

from shipments import carrier_services


@shared_task(acks_late=True, ignore_result=True)
def carrier_webhook_process_task(webhook_id: int) -> None:
    carrier_services.carrier_webhook_process(webhook_id=webhook_id)


@shared_task(ignore_result=True)
def carrier_webhooks_sweep_task() -> None:
    carrier_services.carrier_webhooks_sweep()
