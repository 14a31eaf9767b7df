from __future__ import annotations

from celery import shared_task

from shipments import carrier_services
from shipments.carriers import accounts, due, sync


@shared_task(acks_late=True, ignore_result=True)
def carrier_webhook_process_task(webhook_id: int) -> None:
    carrier_services.carrier_webhook_process(webhook_id=webhook_id)


@shared_task(ignore_result=True)
def carrier_webhooks_sweep_task() -> None:
    carrier_services.carrier_webhooks_sweep()


@shared_task(ignore_result=True)
def carrier_sync_due_task() -> None:
    due.carrier_sync_due()


# Not retried: a failed batch's shipments come due again when their lease
# lapses, and running one twice records nothing twice.
@shared_task(acks_late=True, ignore_result=True)
def carrier_sync_batch_task(account_id: int, shipment_ids: list[int]) -> None:
    sync.carrier_sync_batch(account_id=account_id, shipment_ids=shipment_ids)


@shared_task(acks_late=True, ignore_result=True)
def carrier_account_alert_task(account_id: int) -> None:
    accounts.carrier_account_alert_send(account_id=account_id)
