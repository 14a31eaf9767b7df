from django.apps import AppConfig


class ExceptionsMgmtConfig(AppConfig):
    name = "exceptions_mgmt"
    verbose_name = "Delivery exceptions"

    def ready(self) -> None:
        from exceptions_mgmt.handlers import on_event_recorded
        from shipments.events import event_recorded

        event_recorded.connect(on_event_recorded, dispatch_uid="exceptions.close")
