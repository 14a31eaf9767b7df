from django.apps import AppConfig


class ExceptionsMgmtConfig(AppConfig):
    name = "exceptions_mgmt"
    verbose_name = "Delivery exceptions"

    def ready(self) -> None:
        from exceptions_mgmt.handlers import on_events_recorded
        from shipments.events import events_recorded

        events_recorded.connect(on_events_recorded, dispatch_uid="exceptions.close")
