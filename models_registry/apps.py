from django.apps import AppConfig


class ModelsRegistryConfig(AppConfig):
    name = "models_registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from models_registry import signals  # noqa: F401  (a restarted worker resumes its downloads)
        from sparkportal import events

        # Models, downloads and weights are visible to every signed-in user; changing them is not.
        events.register_group("models", lambda user, group: True)
