from django.apps import AppConfig


class TracksopConfig(AppConfig):
    name = "tracksop"
    verbose_name = "TrackSOP"

    def ready(self) -> None:
        from django.core.servers import basehttp
        from django.db.models.signals import post_migrate

        from tracksop import signals  # noqa: F401
        from tracksop.roles import sync_roles_after_migrate

        # After a migrate (and after a test flush), which sends post_migrate
        # once per app when every migration is in. Ours is enough: the sync
        # creates every app's permissions itself before it grants them, so it
        # needs no other app's handler to have run, whatever the app order.
        post_migrate.connect(sync_roles_after_migrate, sender=self)

        # The development server (runserver, the browser tests' live server)
        # names itself and the Python version in a Server header; a response
        # header cannot remove it, an empty name leaves it out. gunicorn's is
        # dropped in gunicorn.conf.py.
        basehttp.ServerHandler.server_software = ""
