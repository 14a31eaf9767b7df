from django.apps import AppConfig


class TracksopConfig(AppConfig):
    name = "tracksop"
    verbose_name = "TrackSOP"

    def ready(self) -> None:
        from django.apps import apps
        from django.core.servers import basehttp
        from django.db.models.signals import post_migrate

        from tracksop import signals  # noqa: F401
        from tracksop.roles import sync_roles_after_migrate

        # After every app's migrations (and after a test flush), so all the
        # permissions the roles name exist.
        post_migrate.connect(
            sync_roles_after_migrate, sender=apps.get_app_config("reports")
        )

        # The development server (runserver, the browser tests' live server)
        # names itself and the Python version in a Server header; a response
        # header cannot remove it, an empty name leaves it out. gunicorn's is
        # dropped in gunicorn.conf.py.
        basehttp.ServerHandler.server_software = ""
