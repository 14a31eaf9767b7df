from django.apps import AppConfig


class ExceptionsMgmtConfig(AppConfig):
    name = "exceptions_mgmt"
    verbose_name = "Delivery exceptions"
