from django.apps import AppConfig


class BenchmarksConfig(AppConfig):
    name = "benchmarks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sparkportal import events

        # Results are team knowledge: every signed-in user may follow runs; only operators drive them.
        everyone = lambda user, group: True  # noqa: E731
        events.register_group("benchmarks.runs", everyone)
        events.register_group("benchmarks.run", everyone)
