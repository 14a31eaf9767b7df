"""The exceptions app: it listens to the shipments app's events."""

from django.apps import AppConfig


class ExceptionsMgmtConfig(AppConfig):
    name = "exceptions_mgmt"
    verbose_name = "Delivery exceptions"

    def ready(self) -> None:
        from exceptions_mgmt.handlers import on_events_recorded
        from exceptions_mgmt.models import PUBLIC_CAUSES
        from shipments.events import events_recorded
        from shipments.public import legacy_public_causes_add

        events_recorded.connect(on_events_recorded, dispatch_uid="exceptions.close")
        # Exception events written before they carried `public_cause`.
        legacy_public_causes_add(PUBLIC_CAUSES)
