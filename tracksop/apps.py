from django.apps import AppConfig


class TracksopConfig(AppConfig):
    name = "tracksop"
    verbose_name = "TrackSOP"

    def ready(self) -> None:
        from tracksop import signals  # noqa: F401
