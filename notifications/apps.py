from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Customer notifications"

    def ready(self) -> None:
        from notifications.handlers import on_event_recorded
        from shipments.events import event_recorded

        event_recorded.connect(on_event_recorded, dispatch_uid="notifications.outbox")
