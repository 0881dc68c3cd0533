from django.apps import AppConfig


class ServersConfig(AppConfig):
    name = "servers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from servers import signals  # noqa: F401  (worker start reconciles; heartbeats carry engine facts)
        from sparkportal import events

        everyone = lambda user, group: True  # noqa: E731  - what runs is visible to all users
        # Engine figures of a server: everyone who may chat with a model may see how it performs.
        events.register_group("servers.metrics", everyone)

        from servers.metrics.exporter import ServersCollector
        from sparkportal import exporter

        exporter.register(ServersCollector())
        # Server status is visible to everyone (chat needs it); logs may hold prompts: operators only.
        events.register_group("servers.servers", everyone)
        events.register_group("servers.server", everyone)
        events.register_group("servers.log", lambda user, group: bool(getattr(user, "is_operator", False)))
