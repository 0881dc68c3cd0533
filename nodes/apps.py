from django.apps import AppConfig


class NodesConfig(AppConfig):
    name = "nodes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from nodes import receivers  # noqa: F401  (a node's worker registers its node at start)
        from sparkportal import events

        everyone = lambda user, group: True  # noqa: E731  - node figures are visible to all users
        events.register_group("nodes.all", everyone)
        events.register_group("nodes.node", everyone)
