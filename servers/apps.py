from django.apps import AppConfig


class ServersConfig(AppConfig):
    name = "servers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from servers import signals  # noqa: F401  (worker start registers its node)
        from sparkportal import events

        everyone = lambda user, group: True  # noqa: E731  - node figures are visible to all users
        events.register_group("servers.nodes", everyone)
        events.register_group("servers.node", everyone)
