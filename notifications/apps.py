from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Customer notifications"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from notifications.handlers import (
            on_events_recorded,
            on_events_recorded_webhooks,
        )
        from notifications.models import MessageTemplate
        from notifications.rendering import overrides_forget
        from shipments.events import events_recorded

        events_recorded.connect(on_events_recorded, dispatch_uid="notifications.outbox")
        events_recorded.connect(
            on_events_recorded_webhooks, dispatch_uid="notifications.webhooks"
        )
        # Cache invalidation, not a business rule: any write to an override
        # (admin, shell, fixtures) must drop the cached copy of the table.
        for signal in (post_save, post_delete):
            signal.connect(
                overrides_forget,
                sender=MessageTemplate,
                dispatch_uid=f"notifications.overrides.{signal is post_save}",
            )
