"""Fill the ETA given at dispatch and the origin hub of existing shipments from
their event logs: the dispatch event's ETA, and the first located event."""

from django.db import migrations

BATCH = 2000


def backfill(apps, schema_editor):
    Shipment = apps.get_model("shipments", "Shipment")
    TrackingEvent = apps.get_model("shipments", "TrackingEvent")
    last = 0
    while True:
        ids = list(
            Shipment.objects.filter(pk__gt=last, dispatched_at__isnull=False)
            .order_by("pk")
            .values_list("pk", flat=True)[:BATCH]
        )
        if not ids:
            return
        last = ids[-1]
        etas = {}
        for shipment_id, data in (
            TrackingEvent.objects.filter(shipment_id__in=ids, kind="dispatched")
            .order_by("occurred_at", "id")
            .values_list("shipment_id", "data")
        ):
            eta = (data or {}).get("estimated_delivery")
            if eta and shipment_id not in etas:
                etas[shipment_id] = eta
        origins = {}
        for shipment_id, location_id in (
            TrackingEvent.objects.filter(shipment_id__in=ids, location__isnull=False)
            .order_by("occurred_at", "id")
            .values_list("shipment_id", "location_id")
        ):
            origins.setdefault(shipment_id, location_id)
        Shipment.objects.bulk_update(
            [
                Shipment(pk=pk, dispatch_eta=etas.get(pk), origin_id=origins.get(pk))
                for pk in ids
            ],
            ["dispatch_eta", "origin_id"],
        )


class Migration(migrations.Migration):
    dependencies = [("shipments", "0009_dispatch_eta_origin_access_log")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
